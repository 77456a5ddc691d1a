"""What server/alerts.py relies on in the event loops' SSL protocols: this fails on a Python or
uvloop release that breaks it, before any user does.

alerts.py reports a refused handshake once as SSLWantReadError, so that the loop's SSL
protocol sends the alert OpenSSL wrote (as it sends every handshake flight) and waits; the
next data or the client's close then ends the handshake with the real error. Checked here on
both loops uvicorn can run (uvloop, and asyncio's own, whose SSL protocol is CPython's
asyncio/sslproto.py), with a bare asyncio server and Python's ssl client. Tested on Python
3.11 with uvloop 0.23.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest
import uvloop
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from pkiforge.server.alerts import AlertingContext
from tests.conftest import data_file
from tests.server.test_uvicorn_contract import _cert, _key

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "uvloop": uvloop.new_event_loop,
    "asyncio": asyncio.new_event_loop,
}
VERSIONS = {"TLS 1.2": ssl.TLSVersion.TLSv1_2, "TLS 1.3": ssl.TLSVersion.TLSv1_3}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA and the server's certificate; a stranger's CA and its client certificate."""
    tmp = tmp_path_factory.mktemp("alert-contract")
    ca_key, server_key, stranger_key, client_key = (
        _key("p256"), _key("p256-b"), _key("p521"), _key("p384"),
    )  # fmt: skip
    ca = _cert("contract CA", ca_key, None, ca_key)
    server = _cert("127.0.0.1", server_key, ca, ca_key, ExtendedKeyUsageOID.SERVER_AUTH)
    stranger = _cert("stranger CA", stranger_key, None, stranger_key)
    client = _cert("client", client_key, stranger, stranger_key, ExtendedKeyUsageOID.CLIENT_AUTH)
    out = {name: tmp / f"{name}.pem" for name in ("ca", "server", "server-key", "client", "key")}
    out["ca"].write_bytes(ca.public_bytes(Encoding.PEM))
    out["server"].write_bytes(server.public_bytes(Encoding.PEM))
    out["server-key"].write_bytes(data_file("key-p256-b.pem"))
    out["client"].write_bytes(client.public_bytes(Encoding.PEM))
    out["key"].write_bytes(data_file("key-p384.pem"))
    return out


@contextmanager
def _serving(
    loop_factory: Callable[[], asyncio.AbstractEventLoop], files: dict[str, Path]
) -> Iterator[int]:
    """A TLS server with an AlertingContext on a loop of its own (in a thread)."""
    ctx = AlertingContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.verify_mode = ssl.CERT_OPTIONAL
    ctx.load_verify_locations(cafile=str(files["ca"]))
    ctx.load_cert_chain(str(files["server"]), str(files["server-key"]))
    loop = loop_factory()
    started: list[asyncio.AbstractServer] = []
    ready = threading.Event()

    async def start() -> None:
        started.append(await loop.create_server(asyncio.Protocol, "127.0.0.1", 0, ssl=ctx))
        ready.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop)
    assert ready.wait(10), "the server did not start"
    try:
        yield started[0].sockets[0].getsockname()[1]
    finally:
        loop.call_soon_threadsafe(started[0].close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def _refused(
    port: int, files: dict[str, Path], version: ssl.TLSVersion
) -> tuple[ssl.SSLError, socket.socket]:
    """Present the stranger's certificate: the error the client saw, and the connection as a
    plain socket."""
    ctx = ssl.create_default_context(cafile=str(files["ca"]))
    ctx.load_cert_chain(str(files["client"]), str(files["key"]))
    ctx.minimum_version = ctx.maximum_version = version
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    conn = ctx.wrap_socket(raw, server_hostname="127.0.0.1", do_handshake_on_connect=False)
    with pytest.raises(ssl.SSLError) as refused:
        conn.do_handshake()  # TLS 1.2 is refused here
        conn.recv(1024)  # TLS 1.3: after the client's side of the handshake
    plain = socket.socket(fileno=os.dup(conn.fileno()))
    conn.close()
    plain.settimeout(10)
    return refused.value, plain


def _server_side_open(port: int) -> int:
    """Server-side TCP connections on `port` not yet closed by the server (the kernel's view:
    ESTABLISHED or CLOSE_WAIT)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] in ("01", "08"):
                count += 1
    return count


@pytest.mark.parametrize("version", VERSIONS.keys())
@pytest.mark.parametrize("loop", LOOPS.keys())
def test_the_alert_reaches_the_client_and_its_next_bytes_close(
    files: dict[str, Path], loop: str, version: str
) -> None:
    with _serving(LOOPS[loop], files) as port:
        error, raw = _refused(port, files, VERSIONS[version])
        with raw:
            assert error.reason == "TLSV1_ALERT_UNKNOWN_CA", error
            # the server waits for the client; whatever it sends ends the handshake
            raw.sendall(b"\x17\x03\x03\x00\x01\x00")
            with suppress(ConnectionResetError):
                assert raw.recv(1024) == b""  # closed by the server, not timed out


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("loop", LOOPS.keys())
def test_the_server_closes_when_the_refused_client_does(files: dict[str, Path], loop: str) -> None:
    with _serving(LOOPS[loop], files) as port:
        error, raw = _refused(port, files, ssl.TLSVersion.TLSv1_3)
        assert error.reason == "TLSV1_ALERT_UNKNOWN_CA", error
        raw.close()
        deadline = time.monotonic() + 10
        while _server_side_open(port) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _server_side_open(port) == 0


@pytest.mark.parametrize("loop", LOOPS.keys())
def test_a_refusal_without_an_alert_closes_at_once(files: dict[str, Path], loop: str) -> None:
    """Plain HTTP to the TLS port: OpenSSL sends no alert, so nothing is waited for."""
    with (
        _serving(LOOPS[loop], files) as port,
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
    ):
        raw.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        with suppress(ConnectionResetError):
            assert raw.recv(1024) == b""


def test_what_alerts_py_calls_is_public_api() -> None:
    """ssl.SSLContext.wrap_bio's parameters (uvloop passes server_side and server_hostname by
    keyword), the sslobject_class it builds, and MemoryBIO.pending."""
    import inspect

    assert list(inspect.signature(ssl.SSLContext.wrap_bio).parameters) == [
        "self", "incoming", "outgoing", "server_side", "server_hostname", "session",
    ]  # fmt: skip
    ctx = AlertingContext(ssl.PROTOCOL_TLS_SERVER)
    obj = ctx.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_side=True)
    assert isinstance(obj, AlertingContext.sslobject_class)
    assert ssl.MemoryBIO().pending == 0
