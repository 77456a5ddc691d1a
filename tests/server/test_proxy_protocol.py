"""PROXY protocol v2 on a real `pkiforge serve`: from the trusted balancer (127.0.0.2 here) a
connection must start with a valid header, whose client address the audit trail records;
from anyone else (127.0.0.1) no header is ever read. Raw sockets and Python's ssl module
stand for the balancer and its clients; tests/deploy/test_haproxy.py puts HAProxy there."""

from __future__ import annotations

import socket
import ssl
import struct
from collections.abc import Iterator

import pytest

from pkiforge.server.proxy import SIGNATURE
from tests.api.conftest import HTTPS_WHITELIST
from tests.api.helpers import make_csr
from tests.api.proxied import LOCAL_V2, issued_from, proxy_v2, request
from tests.api.server import Home, Server, make_home, start_server

pytestmark = pytest.mark.slow
BALANCER = "127.0.0.2"  # trusted; the test server's own health check comes from 127.0.0.1


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    config = {
        "server": {
            "proxy_protocol": {"trusted": [f"{BALANCER}/32"]},
            "max_connections_per_client": 2,
        }
    }
    return make_home(tmp_path_factory.mktemp("proxy") / "home", HTTPS_WHITELIST, config)


@pytest.fixture(scope="module")
def server(home: Home) -> Iterator[Server]:
    started = start_server(home, "proxied")
    yield started
    started.stop()


@pytest.fixture(scope="module")
def cert(home: Home) -> tuple[str, str]:
    return home.client_cert("burst", "x.burst.internal")


def test_the_trusted_balancer_names_the_client(
    server: Server, home: Home, cert: tuple[str, str]
) -> None:
    cn = "via-balancer.burst.internal"
    status, body = request(
        server,
        BALANCER,
        proxy_v2("203.0.113.7", 51000),
        "/api/v1/certificates/request",
        {"csr": make_csr(cn, [cn])},
        cert,
    )
    assert status == 201, body
    assert issued_from(home, cn) == "203.0.113.7"


def test_a_local_header_keeps_the_balancers_address(server: Server) -> None:
    """LOCAL is the balancer's own connection (HAProxy's health checks): served as from it."""
    status, body = request(server, BALANCER, LOCAL_V2, "/readyz")
    assert status == 200, body


@pytest.mark.parametrize(
    "prefix",
    [
        b"",  # plain TLS: the ClientHello is not a header
        b"PROXY TCP4 203.0.113.7 127.0.0.1 51000 8443\r\n",  # v1 is not accepted
        SIGNATURE + b"\x21\x12" + struct.pack("!H", 12) + bytes(12),  # UDP
        proxy_v2("203.0.113.7", 51000)[:-3],  # cut short: the TLS bytes make it malformed
    ],
    ids=["no-header", "v1", "udp", "cut-short"],
)
def test_the_trusted_balancer_without_a_valid_header_is_refused(
    server: Server, prefix: bytes
) -> None:
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        request(server, BALANCER, prefix, "/readyz")
    log = server.log.read_text()
    assert "connection from balancer 127.0.0.2 refused" in log
    assert "PROXY protocol v2 required from: 127.0.0.2/32" in log  # said at start


def test_a_header_from_anyone_else_is_never_read(
    server: Server, home: Home, cert: tuple[str, str]
) -> None:
    # the header goes to the TLS layer as it is, which refuses it as a handshake
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        request(server, "127.0.0.1", proxy_v2("203.0.113.7", 51000), "/readyz")
    cn = "direct.burst.internal"
    status, body = request(
        server, "127.0.0.1", b"", "/api/v1/certificates/request", {"csr": make_csr(cn, [cn])}, cert
    )
    assert status == 201, body
    assert issued_from(home, cn) == "127.0.0.1"


def test_the_connection_cap_counts_the_client_not_the_balancer(server: Server) -> None:
    """Two connections of one client behind the balancer are its cap; another client's are
    not counted with them."""

    def connect(client: str) -> ssl.SSLSocket:
        raw = socket.create_connection(
            ("127.0.0.1", server.port), timeout=20, source_address=(BALANCER, 0)
        )
        raw.sendall(proxy_v2(client, 40000))
        return server.tls().wrap_socket(raw, server_hostname="127.0.0.1")

    held = [connect("203.0.113.9"), connect("203.0.113.9")]
    try:
        with connect("203.0.113.9") as third:
            assert third.recv(65536).startswith(b"HTTP/1.1 429 ")
        with connect("198.51.100.20") as other:
            other.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            assert other.recv(65536).startswith(b"HTTP/1.1 200 ")
    finally:
        for conn in held:
            conn.close()
