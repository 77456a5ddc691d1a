"""Every error status the API can answer maps to one exception (client/errors.py) and so to one
exit code, the same for the client library, the remote commands and `pkiforge request`."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pkiforge import errors
from pkiforge.api import problems
from pkiforge.cli.main import run
from pkiforge.cli.output import exit_code
from pkiforge.client.errors import error_from_problem
from tests.api.helpers import make_api

KEY = Path(__file__).parents[1] / "data" / "key-p256.pem"


@dataclass(frozen=True)
class Row:
    status: int
    slug: str  # the problem type the server sends with it (`urn:pkiforge:problem:<slug>`)
    kind: type[errors.PkiError]
    exit: int


TABLE = [
    Row(400, "invalid-input", errors.InvalidInput, 3),
    Row(401, "unauthenticated", errors.AuthenticationFailed, 6),
    Row(403, "forbidden", errors.PermissionDenied, 6),
    Row(404, "not-found", errors.NotFound, 4),
    Row(404, "http", errors.NotFound, 4),  # no such route
    Row(405, "http", errors.InvalidInput, 3),
    Row(409, "conflict", errors.Conflict, 5),
    Row(413, "http", errors.InvalidInput, 3),
    Row(415, "http", errors.InvalidInput, 3),
    Row(422, "validation", errors.InvalidInput, 3),
    Row(429, "rate-limited", errors.RateLimited, 6),
    Row(500, "integrity", errors.IntegrityError, 8),
    Row(500, "internal", errors.ServerError, 7),
    Row(503, "unavailable", errors.StoreUnavailable, 7),
    Row(503, "ca-key-unavailable", errors.StoreUnavailable, 7),
    Row(503, "storage-full", errors.StoreUnavailable, 7),  # retried by the agent, as the rest
]
IDS = [f"{r.status}-{r.slug}" for r in TABLE]


@dataclass
class Answer:
    """What the stand-in server answers to every request: one problem, rendered by the API."""

    status: int = 500
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""

    def set(self, row: Row) -> str:
        detail = f"refused: {row.slug}"
        headers = {"Retry-After": "3"} if row.status == 429 else None
        response = problems.problem(row.status, row.slug, detail, headers=headers)
        self.status, self.body = row.status, bytes(response.body)
        self.headers = tuple(response.headers.items())
        return detail


@pytest.fixture(scope="module")
def stand_in() -> Iterator[tuple[str, Answer]]:
    """A plain HTTP server on loopback that answers every request with `Answer`."""
    answer = Answer()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(answer.status)
            for name, value in answer.headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(answer.body)

        do_GET = do_POST = do_DELETE = _answer

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", answer
    finally:
        server.shutdown()
        server.server_close()


def cli(monkeypatch: pytest.MonkeyPatch, home: Path, *args: str) -> int:
    """Run the console entry point in this process; its exit code."""
    monkeypatch.setattr(sys, "argv", ["pkiforge", "--home", str(home), *args])
    with pytest.raises(SystemExit) as ended:
        run()
    return int(ended.value.code or 0)


def test_every_status_the_api_answers_has_one_row(tmp_path: Path) -> None:
    api = make_api(tmp_path / "home")
    try:
        doc = api.app.openapi()
    finally:
        api.pki.close()
    documented = {
        int(code)
        for ops in doc["paths"].values()
        for op in ops.values()
        for code in op["responses"]
        if int(code) >= 400
    }
    rows = {(r.status, r.slug) for r in TABLE}
    assert len(rows) == len(TABLE), "a status and problem type appear twice"
    assert documented <= {r.status for r in TABLE}, documented - {r.status for r in TABLE}
    mapped = {(status, slug) for _, status, slug in problems.STATUS}
    assert mapped <= rows, mapped - rows


@pytest.mark.parametrize("row", TABLE, ids=IDS)
def test_the_client_raises_one_exception_per_answer(row: Row) -> None:
    answer = Answer()
    detail = answer.set(row)
    exc = error_from_problem(row.status, dict(answer.headers), answer.body)
    assert type(exc) is row.kind, exc
    assert str(exc) == detail
    assert exit_code(exc) == row.exit


@pytest.mark.parametrize("row", TABLE, ids=IDS)
def test_the_cli_exits_alike_for_remote_commands_and_request(
    row: Row,
    stand_in: tuple[str, Answer],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    url, answer = stand_in
    detail = answer.set(row)
    home = tmp_path / "no-home"
    assert cli(monkeypatch, home, "keys", "list", "--server", url) == row.exit
    assert capsys.readouterr().err == f"error: {detail}\n"
    signed = ["GET", f"{url}/anything", "--key-id", "k1", "--private-key", str(KEY)]
    assert cli(monkeypatch, home, "request", *signed) == row.exit
    assert detail in capsys.readouterr().out  # `request` prints the answer like curl
    assert not home.exists()
