"""Every answer carries a request id; a store outage tells the client only a stable message and
that id, and the server's log the cause (which names hosts and ports) under the same id.

The outages are real: `pkiforge serve` on PostgreSQL through a TCP forwarder that is then
shut (a closed port), and on a Redis URL whose port nothing listens on.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from pkiforge.api.problems import from_error
from pkiforge.errors import StoreUnavailable
from tests.conftest import _empty_postgres

from .conftest import HTTPS_WHITELIST
from .helpers import Api, make_csr
from .server import Home, Server, free_port, make_home, start_server

NAMES = ["billing.internal"]
HEX_ID = re.compile(r"[0-9a-f]{32}")


# --- the id, in-process ----------------------------------------------------------------------


async def test_every_answer_has_an_id_and_a_problem_says_it_too(api: Api) -> None:
    ok = await api.client.get("/healthz")
    missing = await api.client.get("/api/v1/certificates/0abc")
    refused = await api.client.post("/api/v1/certificates/request", json={"csr": "x"})
    assert HEX_ID.fullmatch(ok.headers["x-request-id"])
    for r in (missing, refused):
        assert r.headers["content-type"] == "application/problem+json", r.text
        assert r.json()["request_id"] == r.headers["x-request-id"]
    assert len({r.headers["x-request-id"] for r in (ok, missing, refused)}) == 3


@pytest.mark.parametrize(
    ("offered", "kept"),
    [
        ("trace-42.a_B", True),
        ("x" * 64, True),
        ("x" * 65, False),  # too long
        ("", False),
        ("a b", False),  # not in A-Z a-z 0-9 . _ -
        ("<script>", False),
        ('a"b', False),
        ("caf\u00e9", False),
    ],
    ids=["safe", "64 chars", "65 chars", "empty", "space", "markup", "quote", "non-ascii"],
)
async def test_a_client_id_is_kept_only_if_short_and_safe(
    api: Api, offered: str, kept: bool
) -> None:
    r = await api.client.get(
        "/api/v1/certificates/0abc", headers=[("X-Request-ID", offered.encode())]
    )
    if kept:
        assert r.headers["x-request-id"] == offered == r.json()["request_id"]
    else:
        assert HEX_ID.fullmatch(r.headers["x-request-id"])
        assert r.json()["request_id"] == r.headers["x-request-id"]


async def test_an_unexpected_error_answers_500_with_the_id_as_incident(api: Api) -> None:
    @api.app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals")

    r = await api.client.get("/boom", headers={"X-Request-ID": "incident-7"})
    assert r.status_code == 500
    assert r.headers["x-request-id"] == "incident-7" == r.json()["request_id"]
    assert "incident-7" in r.json()["detail"] and "secret" not in r.text


def test_the_cause_of_an_outage_goes_to_the_log_only(caplog: pytest.LogCaptureFixture) -> None:
    exc = StoreUnavailable("database unavailable", internal='server at "10.1.2.3", port 5432')
    scope = {"type": "http", "path": "/x", "headers": [(b"x-request-id", b"r-1")]}
    response = from_error(exc, scope)
    assert b"10.1.2.3" not in response.body and b'"request_id":"r-1"' in response.body
    assert 'request r-1: database unavailable: server at "10.1.2.3"' in caplog.text


# --- real outages, real server ---------------------------------------------------------------


class _Forwarder:
    """A TCP forwarder to `target` on a free local port; `close()` shuts the port (new
    connections are refused) and cuts the connections it carries."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.carried: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.carried += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
        self.listener.close()
        for conn in self.carried:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()


def _logged(server: Server, request_id: str) -> str:
    """The server's log line about `request_id` (waits for it: the log is another process's)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lines = [x for x in server.log.read_text().splitlines() if f"request {request_id}" in x]
        if lines:
            return lines[0]
        time.sleep(0.1)
    raise AssertionError(f"no log line for request {request_id}: {server.log.read_text()}")


def _assert_hidden(r: httpx.Response, *internal: str) -> str:
    """A 503 problem that names none of `internal`, with its id; returns the id."""
    assert r.status_code == 503, r.text
    assert r.headers["content-type"] == "application/problem+json"
    for word in internal:
        assert word not in r.text and word not in str(r.headers)
    request_id = r.json()["request_id"]
    assert r.headers["x-request-id"] == request_id
    return str(request_id)


@pytest.fixture
def postgres_home(tmp_path: Path, postgres_url: str) -> Home:
    _empty_postgres(postgres_url)  # the session database may hold another module's tables
    return make_home(tmp_path / "home", HTTPS_WHITELIST, database_url=postgres_url)


@pytest.mark.slow
@pytest.mark.postgres
def test_a_postgresql_outage_names_no_host(postgres_home: Home) -> None:
    cert = postgres_home.client_cert("billing", "billing.internal")
    forwarder = _Forwarder(("127.0.0.1", 5432))
    url = str(postgres_home.database_url).replace(":5432/", f":{forwarder.port}/")
    server = start_server(Home(postgres_home.path, url))
    try:
        with server.client(cert) as c:
            assert c.get("/api/v1/whoami").status_code == 200
            forwarder.close()  # the database's port is now closed
            # each asks the database (the certificate's standing; the list)
            whoami, listed = c.get("/api/v1/whoami"), c.get("/api/v1/certificates")
        for r in (whoami, listed):
            request_id = _assert_hidden(r, "127.0.0.1", str(forwarder.port))
            assert r.json()["detail"] == "database unavailable"
            line = _logged(server, request_id)
            assert "database unavailable" in line and f"port {forwarder.port}" in line, line
    finally:
        server.stop()
        forwarder.close()


@pytest.mark.slow
def test_a_redis_outage_names_no_host(tmp_path: Path) -> None:
    closed = free_port()  # nothing listens there
    home = make_home(
        tmp_path / "home", HTTPS_WHITELIST, {"redis_url": f"redis://127.0.0.1:{closed}/0"}
    )
    cert = home.client_cert("billing", "billing.internal")
    server = start_server(home)
    try:
        with server.client(cert) as c:
            registered = c.post(
                "/api/v1/services/register",
                json={"service_id": "billing", "service_name": "Billing", "names": NAMES},
            )
            assert registered.status_code == 201, registered.text
            r = c.post("/api/v1/certificates/request", json={"csr": make_csr(NAMES[0], NAMES)})
        request_id = _assert_hidden(r, "127.0.0.1", str(closed))
        assert r.json()["detail"].startswith("rate limiter unavailable")
        line = _logged(server, request_id)
        assert f"127.0.0.1:{closed}" in line, line
    finally:
        server.stop()
