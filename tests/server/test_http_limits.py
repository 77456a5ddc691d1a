"""The HTTP layer's bounds on a real `pkiforge serve` (one worker and two): head sizes, the
idle, head and body deadlines, connection caps, and its own answers to malformed requests.

Raw TLS sockets with a valid client certificate stand for hostile clients; Python's ssl module
and /proc (for the workers' resident memory) share none of our code.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import HTTPS_WHITELIST
from tests.api.server import Home, Server, make_home, start_server

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc"),
]

LIMITS = {
    "PKIFORGE_SERVER__MAX_REQUEST_LINE_BYTES": "2048",
    "PKIFORGE_SERVER__MAX_HEADER_BYTES": "2048",
    "PKIFORGE_SERVER__MAX_HEAD_BYTES": "8192",
    "PKIFORGE_SERVER__MAX_HEADERS": "20",
    "PKIFORGE_SERVER__IDLE_TIMEOUT_SECONDS": "2",
    "PKIFORGE_SERVER__HEAD_TIMEOUT_SECONDS": "3",
    "PKIFORGE_SERVER__BODY_TIMEOUT_SECONDS": "3",
}
CAPS = {
    "PKIFORGE_SERVER__MAX_CONNECTIONS": "6",
    "PKIFORGE_SERVER__MAX_CONNECTIONS_PER_CLIENT": "3",
    "PKIFORGE_SERVER__IDLE_TIMEOUT_SECONDS": "60",
}
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    return make_home(tmp_path_factory.mktemp("limits") / "home", HTTPS_WHITELIST)


@pytest.fixture(scope="module")
def cert(home: Home) -> tuple[str, str]:
    return home.client_cert("billing", "billing.internal")


@pytest.fixture(scope="module")
def one(home: Home) -> Iterator[Server]:
    server = start_server(home, "one", extra=LIMITS)
    yield server
    server.stop()


@pytest.fixture(scope="module", params=[1, 2], ids=["one-worker", "two-workers"])
def limited(home: Home, request: pytest.FixtureRequest) -> Iterator[Server]:
    """Each server mode: `serve` in one process, and `serve --workers 2`."""
    if request.param == 1:
        yield request.getfixturevalue("one")
        return
    server = start_server(home, "two", extra=LIMITS, args=("--workers", "2"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def capped(home: Home) -> Iterator[Server]:
    server = start_server(home, "caps", extra=CAPS)
    yield server
    server.stop()


def _tls(server: Server, cert: tuple[str, str], source: str = "127.0.0.1") -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", server.port), 10, (source, 0))
    return server.tls(cert).wrap_socket(raw, server_hostname="127.0.0.1")


def _until_closed(conn: ssl.SSLSocket, seconds: float = 15) -> tuple[bytes, bool]:
    """What the server sent, and whether it closed the connection within `seconds`."""
    got = b""
    conn.settimeout(seconds)
    try:
        while chunk := conn.recv(65536):
            got += chunk
    except TimeoutError:
        return got, False
    except OSError:  # reset, or a TLS close without close_notify
        pass
    return got, True


def _poll(conn: ssl.SSLSocket) -> bytes | None:
    """What the server sent, without waiting: None if nothing yet, b"" if it closed. (Not
    select(): TLS 1.3 session tickets make the socket readable with nothing to read.)"""
    conn.setblocking(False)
    try:
        return conn.recv(65536)
    except (ssl.SSLWantReadError, BlockingIOError):
        return None
    except OSError:
        return b""
    finally:
        conn.settimeout(10)


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0


def _problem(answer: bytes, status: int) -> dict[str, object]:
    head, _, body = answer.partition(b"\r\n\r\n")
    headers = head.lower().split(b"\r\n")
    assert b"content-type: application/problem+json" in headers, head
    assert b"connection: close" in headers, head
    problem = json.loads(body)
    assert problem["status"] == status and str(problem["type"]).startswith("urn:pkiforge:")
    # the same request id in the header and the body, as the app's own answers carry it
    assert problem["request_id"] == _request_id(answer)
    return dict(problem)


def _ask(server: Server, cert: tuple[str, str], request: bytes) -> bytes:
    """Send `request` on a new connection; what came back before the server closed it."""
    with _tls(server, cert) as conn:
        conn.sendall(request)
        conn.settimeout(15)
        got = b""
        with contextlib.suppress(ConnectionResetError, ssl.SSLError, TimeoutError):
            while chunk := conn.recv(65536):
                got += chunk
                if b"\r\n\r\n" in got and _complete(got):
                    break
        return got


def _complete(answer: bytes) -> bool:
    head, _, body = answer.partition(b"\r\n\r\n")
    for line in head.lower().split(b"\r\n"):
        if line.startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


def _workers(server: Server) -> set[int]:
    """The processes that serve: the worker children of a supervisor, or the server itself."""
    pid, found = server.proc.pid, set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                status = (entry / "status").read_text()
                if (
                    f"\nPPid:\t{pid}\n" in status
                    and b"spawn_main" in (entry / "cmdline").read_bytes()
                ):
                    found.add(int(entry.name))
    return found or {pid}


# --- sizes -----------------------------------------------------------------------------------


def test_a_huge_header_is_refused_with_memory_bounded(
    limited: Server, cert: tuple[str, str]
) -> None:
    """20 MiB of one header line: 431 after the first few KiB, the worker's memory does not
    grow with it, and another client is served meanwhile."""
    workers = _workers(limited)
    before = {pid: _rss(pid) for pid in workers}
    chunk = b"a" * 65536
    with _tls(limited, cert) as conn:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ")
        conn.settimeout(10)
        sent, early = 0, None
        while sent < 20 * MiB and early is None:
            try:
                conn.sendall(chunk)
            except OSError:
                break
            sent += len(chunk)
            early = _poll(conn)  # the server answered
        with httpx.Client(base_url=limited.url, verify=limited.tls(cert), timeout=10) as other:
            assert other.get("/healthz").status_code == 200
        answer, closed = _until_closed(conn)
        answer = (early or b"") + answer
    assert _status(answer) == 431, answer[:200]
    assert closed
    _problem(answer, 431)
    for pid in workers:
        assert _rss(pid) < before[pid] + 64 * MiB, f"worker {pid} grew"


HEADS = {
    "request line": (b"GET /healthz?" + b"a" * 3000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    "one header": (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 3000 + b"\r\n\r\n", 431),
    "header count": (
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(25))
        + b"\r\n",
        431,
    ),
    "whole head": (
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
        + b"".join(b"X-%d: %s\r\n" % (i, b"a" * 1800) for i in range(6))
        + b"\r\n",
        431,
    ),
    "within the limits": (
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 1900 + b"\r\n"
        + b"".join(b"X-%d: 1\r\n" % i for i in range(15))
        + b"\r\n",
        200,
    ),
}  # fmt: skip


@pytest.mark.parametrize(("request_bytes", "status"), HEADS.values(), ids=HEADS.keys())
def test_each_head_limit(
    one: Server, cert: tuple[str, str], request_bytes: bytes, status: int
) -> None:
    answer = _ask(one, cert, request_bytes)
    assert _status(answer) == status, answer[:300]
    if status != 200:
        _problem(answer, status)


MALFORMED = {
    "non-numeric content-length": (
        b"POST /api/v1/ocsp HTTP/1.1\r\nHost: x\r\nContent-Length: ab\r\n\r\n"
    ),
    "garbage request line": b"\x01\x02 nonsense\r\n\r\n",
    "two content-lengths": (
        b"POST /api/v1/ocsp HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"
    ),
}


@pytest.mark.parametrize("request_bytes", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_request_gets_a_short_problem_and_a_closed_connection(
    one: Server, cert: tuple[str, str], request_bytes: bytes
) -> None:
    with _tls(one, cert) as conn:
        conn.sendall(request_bytes)
        answer, closed = _until_closed(conn)
    assert _status(answer) == 400, answer[:300]
    problem = _problem(answer, 400)
    assert problem["title"] == "Bad Request" and problem["detail"] == "malformed HTTP request"
    assert closed


# --- deadlines -------------------------------------------------------------------------------


def test_a_connection_that_sends_nothing_is_closed(one: Server, cert: tuple[str, str]) -> None:
    with _tls(one, cert) as conn:
        answer, closed = _until_closed(conn)
    assert closed and answer == b""


def test_a_head_trickled_line_by_line_is_ended_at_its_deadline(
    one: Server, cert: tuple[str, str]
) -> None:
    """Slowloris: one header line a second never completes a head; the head deadline (3 s
    here) ends it with 408 long before 30 lines."""
    lines, early = 0, None
    with _tls(one, cert) as conn:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        while lines < 30:
            time.sleep(1)
            early = _poll(conn)
            if early is not None:
                break
            try:
                conn.sendall(b"X-%d: 1\r\n" % lines)
            except OSError:
                break
            lines += 1
        answer, closed = _until_closed(conn)
        answer = (early or b"") + answer
    assert lines < 30 and closed
    assert _status(answer) == 408, answer[:300]
    _problem(answer, 408)


SHORT_BODIES = {
    "ocsp": b"POST /api/v1/ocsp HTTP/1.1\r\nHost: x\r\n"
    b"Content-Type: application/ocsp-request\r\nContent-Length: 100\r\n\r\n0123456789",
    "json": b"POST /api/v1/certificates/request HTTP/1.1\r\nHost: x\r\n"
    b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"common_name"',
    "signed": b"POST /api/v1/certificates/request HTTP/1.1\r\nHost: x\r\n"
    b"Content-Type: application/json\r\nSignature-Input: sig1=();created=1\r\n"
    b'Signature: sig1=:AA==:\r\nContent-Length: 100\r\n\r\n{"common_name"',
}


@pytest.mark.parametrize("request_bytes", SHORT_BODIES.values(), ids=SHORT_BODIES.keys())
def test_a_body_shorter_than_its_content_length_is_ended_at_the_body_deadline(
    one: Server, cert: tuple[str, str], request_bytes: bytes
) -> None:
    """408 with a request id, logged with it; the client gone is no server error (no
    traceback in the log)."""
    logged = one.log.stat().st_size
    with _tls(one, cert) as conn:
        conn.sendall(request_bytes)
        answer, closed = _until_closed(conn)
    assert closed
    assert _status(answer) == 408, answer[:300]
    _problem(answer, 408)
    rid = _request_id(answer)
    deadline = time.monotonic() + 10
    while rid not in (log := one.log.read_bytes()[logged:].decode()):
        assert time.monotonic() < deadline, log
        time.sleep(0.2)
    time.sleep(1)  # the app's side of the disconnect is logged after the 408
    log = one.log.read_bytes()[logged:].decode()
    assert "request body not complete" in log, log
    assert "Traceback" not in log and "unexpected error" not in log, log


def _request_id(answer: bytes) -> str:
    head = answer.partition(b"\r\n\r\n")[0].decode()
    ids = [line.split(":", 1)[1].strip() for line in head.split("\r\n")
           if line.lower().startswith("x-request-id:")]  # fmt: skip
    assert len(ids) == 1 and ids[0], head
    return ids[0]


def test_a_keep_alive_connection_serves_requests_then_idles_out(
    one: Server, cert: tuple[str, str]
) -> None:
    """The deadlines are per request: a connection that keeps asking is served each time."""
    with _tls(one, cert) as conn:
        for _ in range(3):
            conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            got = b""
            conn.settimeout(15)
            while not _complete(got):
                chunk = conn.recv(65536)
                assert chunk, "closed while in use"
                got += chunk
            assert _status(got) == 200
        answer, closed = _until_closed(conn)
    assert closed and answer == b""


# --- caps ------------------------------------------------------------------------------------


def _served(server: Server, cert: tuple[str, str], source: str) -> ssl.SSLSocket:
    conn = _tls(server, cert, source)
    conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    conn.settimeout(15)
    got = b""
    while not _complete(got):
        chunk = conn.recv(65536)
        assert chunk, f"a connection from {source} was closed"
        got += chunk
    assert _status(got) == 200
    return conn


def _established(port: int) -> int:
    """How many connections the server holds on `port` (the kernel's view, server side)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            # 01 ESTABLISHED, 08 CLOSE_WAIT: the client closed, the server has yet to see it
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] in ("01", "08"):
                count += 1
    return count


def _settle(server: Server, held: int) -> None:
    """Wait until the server holds only the `held` connections (refused ones are gone)."""
    deadline = time.monotonic() + 15
    while _established(server.port) != held:
        assert time.monotonic() < deadline, f"{_established(server.port)} held, not {held}"
        time.sleep(0.05)
    time.sleep(0.1)  # the socket closes as the server drops the connection: let it finish


def test_one_address_over_its_cap_cannot_starve_another(
    capped: Server, cert: tuple[str, str]
) -> None:
    """3 connections per address, 6 per worker (CAPS)."""
    _settle(capped, 0)
    held = [_served(capped, cert, "127.0.0.2") for _ in range(3)]
    try:
        for _ in range(2):
            with _tls(capped, cert, "127.0.0.2") as over:
                answer, closed = _until_closed(over)
            assert _status(answer) == 429 and closed, answer[:300]
            _problem(answer, 429)
        _settle(capped, 3)
        held += [_served(capped, cert, "127.0.0.3") for _ in range(3)]  # another address is served
        with _tls(capped, cert, "127.0.0.4") as seventh:
            answer, closed = _until_closed(seventh)
        assert _status(answer) == 503 and closed, answer[:300]
        _problem(answer, 503)
    finally:
        for conn in held:
            conn.close()
    _settle(capped, 0)
    _served(capped, cert, "127.0.0.2").close()  # the address may connect again
