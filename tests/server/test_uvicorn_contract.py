"""What server/ relies on in uvicorn, beyond its documented API: this fails on an upgrade that
breaks it, before any user does.

server/tls.py subclasses uvicorn's HTTP protocol classes to hand the verified client
certificate to the app (the ASGI TLS extension): it overrides `connection_made(transport)`,
and replaces `self.app`, which each request reads. server/guard.py puts the HTTP layer's
bounds in front of them: it overrides `data_received(data)`, `connection_lost(exc)` and
`send_400_response(msg)` (the parser's "cannot read this request"), and reads `transport`,
`connections`, `client`, `config` and `cycle` (its `more_body`, `disconnected`,
`response_started`, `response_complete`, `message_event`, `scope`). server/run.py serves several
worker processes with `uvicorn.supervisors.Multiprocess(config, sockets=[...]).run()`.
pyproject.toml pins uvicorn to the minor versions this module has passed with.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import inspect
import ipaddress
import json
import socket
import ssl
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding, load_pem_private_key
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState
from uvicorn.supervisors import Multiprocess

from pkiforge.server.config import ServingConfig, uvicorn_config
from pkiforge.server.guard import MALFORMED, TOO_LARGE
from pkiforge.server.limits import HttpLimits, Over
from pkiforge.server.tls import TLSFiles, TLSH11Protocol, TLSHttpToolsProtocol
from tests.conftest import data_file

PROTOCOLS = {
    "httptools": (HttpToolsProtocol, TLSHttpToolsProtocol),
    "h11": (H11Protocol, TLSH11Protocol),
}
NOW = dt.datetime.now(dt.UTC)


def _parameters(fn: Any) -> list[str]:
    return list(inspect.signature(fn).parameters)


@pytest.mark.parametrize(("base", "ours"), PROTOCOLS.values(), ids=PROTOCOLS.keys())
def test_the_protocol_methods_server_overrides_keep_their_shape(base: type, ours: type) -> None:
    assert issubclass(ours, base)
    # tls.py: connection_made(transport) is where the connection's TLS object is read
    assert _parameters(base.connection_made) == ["self", "transport"]
    # uvicorn builds each connection's protocol with these keywords
    assert _parameters(base.__init__)[:4] == ["self", "config", "server_state", "app_state"]
    # guard.py: what it overrides, and that the parser's error answer goes through it
    assert _parameters(base.data_received) == ["self", "data"]
    assert _parameters(base.connection_lost) == ["self", "exc"]
    assert _parameters(base.send_400_response) == ["self", "msg"]
    for knob in ("timeout_keep_alive", "h11_max_incomplete_event_size"):
        assert knob in inspect.signature(uvicorn.Config).parameters


class _Transport(asyncio.Transport):
    """A transport that keeps what is written to it."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5000), "sockname": ("127.0.0.1", 8443)}.get(name, default)

    def write(self, data: Any) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def _waits_forever(scope: Any, receive: Any, send: Any) -> None:
    await asyncio.Event().wait()


def _connected(ours: type, limits: HttpLimits | None = None) -> tuple[Any, _Transport, Any]:
    config = ServingConfig(_waits_forever, http_limits=limits or HttpLimits(), lifespan="off")
    config.load()
    state = ServerState()
    protocol = ours(config=config, server_state=state, app_state={})
    transport = _Transport()
    protocol.connection_made(transport)
    return protocol, transport, state


@pytest.mark.parametrize(("base", "ours"), PROTOCOLS.values(), ids=PROTOCOLS.keys())
async def test_the_protocol_state_the_guard_reads(base: type, ours: type) -> None:
    protocol, transport, state = _connected(ours)
    try:
        assert protocol.transport is transport and protocol in state.connections
        assert protocol.client == ("127.0.0.1", 5000) and protocol.cycle is None
        protocol.data_received(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\n")
        cycle = protocol.cycle
        assert cycle is not None and cycle.more_body  # the head is read, the body is not
        assert not (cycle.disconnected or cycle.response_started or cycle.response_complete)
        assert isinstance(cycle.message_event, asyncio.Event)
        assert cycle.scope["type"] == "http" and cycle.scope["path"] == "/"
        protocol.data_received(b"ab")
        assert cycle.more_body
        protocol.data_received(b"cd")
        assert protocol.cycle is cycle and not cycle.more_body  # the whole body is in
    finally:
        for task in list(state.tasks):
            task.cancel()
        await asyncio.sleep(0)
        protocol.connection_lost(None)
    assert protocol not in state.connections


def _without_id(answer: bytes) -> bytes:
    """The answer with its request id (fresh each time) taken out."""
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = [line for line in head.split(b"\r\n") if not line.startswith(b"x-request-id:")]
    problem = json.loads(body)
    assert problem.pop("request_id")
    return b"\r\n".join(lines) + json.dumps(problem).encode()


@pytest.mark.parametrize(("base", "ours"), PROTOCOLS.values(), ids=PROTOCOLS.keys())
async def test_a_parser_error_is_answered_through_send_400_response(base: type, ours: type) -> None:
    protocol, transport, _ = _connected(ours)
    protocol.data_received(b"\x01\x02 nonsense\r\n\r\n")
    assert _without_id(bytes(transport.written)) == _without_id(MALFORMED.render(32 * "0"))
    assert transport.closed
    protocol.connection_lost(None)


@pytest.mark.parametrize(("base", "ours"), PROTOCOLS.values(), ids=PROTOCOLS.keys())
async def test_a_head_over_its_limit_never_reaches_the_parser(base: type, ours: type) -> None:
    protocol, transport, state = _connected(ours, HttpLimits(max_header=100))
    protocol.data_received(b"GET / HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 200)
    assert _without_id(bytes(transport.written)) == _without_id(
        TOO_LARGE[Over.HEADER].render(32 * "0")
    )
    assert transport.closed
    assert protocol.cycle is None and not state.tasks
    protocol.connection_lost(None)


@pytest.mark.parametrize(("base", "ours"), PROTOCOLS.values(), ids=PROTOCOLS.keys())
async def test_a_protocol_holds_the_app_it_calls_as_self_app(base: type, ours: type) -> None:
    """tls.py wraps `self.app` per connection: the attribute must exist, set from the config."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("not called")

    config = uvicorn.Config(app, lifespan="off", http=ours)
    config.load()
    assert config.http_protocol_class is ours
    protocol = ours(config=config, server_state=ServerState(), app_state={})
    assert protocol.app is config.loaded_app


def test_the_supervisor_api_run_calls_is_there(
    pki: tuple[TLSFiles, tuple[str, str], Path],
) -> None:
    """server/run.py: `Multiprocess(config, sockets=[listener]).run()` with `config.workers`
    processes, each running `uvicorn.Server(config).run(sockets)` on the shared socket."""
    assert _parameters(Multiprocess.__init__) == ["self", "config", "sockets"]
    assert _parameters(Multiprocess.run) == ["self"]
    assert _parameters(uvicorn.Server.run) == ["self", "sockets"]
    # a dead worker is replaced; SIGINT and SIGTERM stop them all
    for method in ("keep_subprocess_alive", "handle_int", "handle_term"):
        assert callable(getattr(Multiprocess, method))
    limits = HttpLimits(max_head=4096, idle_timeout=7)
    config = uvicorn_config(_app_factory, pki[0], "127.0.0.1", 8443, workers=3, limits=limits)
    assert config.workers == 3 and config.http == TLSHttpToolsProtocol
    assert config.http_limits == limits and config.timeout_keep_alive == 7
    assert config.h11_max_incomplete_event_size == 4096
    assert "ssl_context_factory" in inspect.signature(uvicorn.Config).parameters
    config.load()
    assert config.http_protocol_class is TLSHttpToolsProtocol


# --- one real mTLS request through the real server -------------------------------------------


def _key(name: str) -> CertificateIssuerPrivateKeyTypes:
    key = load_pem_private_key(data_file(f"key-{name}.pem"), None)
    assert not isinstance(key, Exception)
    return key  # type: ignore[return-value]


def _cert(
    subject: str,
    key: CertificateIssuerPrivateKeyTypes,
    issuer: x509.Certificate | None,
    issuer_key: CertificateIssuerPrivateKeyTypes,
    eku: x509.ObjectIdentifier | None = None,
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer else name)
        .public_key(key.public_key())  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(minutes=5))
        .not_valid_after(NOW + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
    if subject == "127.0.0.1":
        san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(subject))])
        builder = builder.add_extension(san, critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture
def pki(tmp_path: Path) -> Iterator[tuple[TLSFiles, tuple[str, str], Path]]:
    """A CA; the server's certificate and a client's, both issued by it. Committed keys."""
    ca_key, server_key, client_key = _key("p256"), _key("p256-b"), _key("p384")
    ca = _cert("contract CA", ca_key, None, ca_key)
    server = _cert("127.0.0.1", server_key, ca, ca_key, ExtendedKeyUsageOID.SERVER_AUTH)
    client = _cert("client", client_key, ca, ca_key, ExtendedKeyUsageOID.CLIENT_AUTH)
    files = TLSFiles(tmp_path / "tls.pem", tmp_path / "tls.key", tmp_path / "cas.pem")
    files.cert.write_bytes(server.public_bytes(Encoding.PEM))
    files.key.write_bytes(data_file("key-p256-b.pem"))
    files.client_cas.write_bytes(ca.public_bytes(Encoding.PEM))
    (tmp_path / "client.pem").write_bytes(client.public_bytes(Encoding.PEM))
    (tmp_path / "client.key").write_bytes(data_file("key-p384.pem"))
    yield files, (str(tmp_path / "client.pem"), str(tmp_path / "client.key")), tmp_path / "cas.pem"


async def _echo_tls(scope: Any, receive: Any, send: Any) -> None:
    """Answers with the ASGI TLS extension the server put in the scope."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = json.dumps(scope.get("extensions", {}).get("tls")).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def _app_factory() -> Any:
    return _echo_tls


@asynccontextmanager
async def _serving(
    files: TLSFiles,
    log_level: str,
    http: type[asyncio.Protocol] | None = None,
    limits: HttpLimits | None = None,
) -> AsyncIterator[int]:
    """A uvicorn server with our TLS configuration on a free local port, for the block."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    config = uvicorn_config(_app_factory, files, "127.0.0.1", port, limits=limits)
    if http is not None:
        config.http = http
    config.log_level = log_level
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        for _ in range(500):
            if server.started or serving.done():
                break
            await asyncio.sleep(0.01)
        assert server.started, "the server did not start"
        yield port
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 15)


@pytest.mark.parametrize("protocol", PROTOCOLS.keys())
async def test_a_verified_client_certificate_reaches_the_app(
    pki: tuple[TLSFiles, tuple[str, str], Path], protocol: str
) -> None:
    files, client, root = pki
    async with _serving(files, "warning", PROTOCOLS[protocol][1]) as port:
        with_cert = ssl.create_default_context(cafile=str(root))
        with_cert.load_cert_chain(*client)
        async with httpx.AsyncClient(verify=with_cert) as http:
            tls = (await http.get(f"https://127.0.0.1:{port}/")).json()
            again = (await http.get(f"https://127.0.0.1:{port}/")).json()  # same connection
        async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=str(root))) as http:
            anonymous = (await http.get(f"https://127.0.0.1:{port}/")).json()
    presented = Path(client[0]).read_text()
    assert tls["client_cert_chain"] == [presented] and again == tls
    assert tls["tls_version"] in (0x0303, 0x0304) and tls["cipher_suite"]
    assert anonymous["client_cert_chain"] == []


async def test_a_certificate_from_another_ca_is_refused_in_the_handshake(
    pki: tuple[TLSFiles, tuple[str, str], Path], tmp_path: Path
) -> None:
    """The app only ever sees chains the server's context verified."""
    files, _, root = pki
    stranger_key = _key("p521")
    stranger = _cert("stranger", stranger_key, None, stranger_key, ExtendedKeyUsageOID.CLIENT_AUTH)
    (tmp_path / "stranger.pem").write_bytes(stranger.public_bytes(Encoding.PEM))
    (tmp_path / "stranger.key").write_bytes(data_file("key-p521.pem"))
    async with _serving(files, "critical") as port:
        ctx = ssl.create_default_context(cafile=str(root))
        ctx.load_cert_chain(str(tmp_path / "stranger.pem"), str(tmp_path / "stranger.key"))
        async with httpx.AsyncClient(verify=ctx) as http:
            # told why (server/alerts.py); httpx's async TLS stream lets ssl's error out as is
            with pytest.raises((httpx.TransportError, ssl.SSLError), match="alert unknown ca"):
                await http.get(f"https://127.0.0.1:{port}/")


@pytest.mark.parametrize("protocol", PROTOCOLS.keys())
async def test_each_protocol_class_refuses_an_oversized_head_over_tls(
    pki: tuple[TLSFiles, tuple[str, str], Path], protocol: str
) -> None:
    """Both classes, served by uvicorn with our TLS configuration (the real process tests in
    test_http_limits.py serve httptools, the class `serve` uses)."""
    files, client, root = pki
    async with _serving(files, "critical", PROTOCOLS[protocol][1], HttpLimits()) as port:
        ctx = ssl.create_default_context(cafile=str(root))
        ctx.load_cert_chain(*client)
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=ctx, server_hostname="127.0.0.1"
        )
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 9000 + b"\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["status"] == 431
