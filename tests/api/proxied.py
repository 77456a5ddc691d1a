"""A client that speaks as a TLS-passthrough balancer would: a PROXY v2 header (built here
from the specification, §2.2, not by the parser under test), then TLS, then HTTP/1.1."""

from __future__ import annotations

import ipaddress
import json
import socket
import struct
from collections.abc import Callable

from pkiforge.server.proxy import SIGNATURE

from .server import Home, Server


def proxy_v2(client: str, port: int) -> bytes:
    """A PROXY command for a TCP/IPv4 client."""
    body = (
        ipaddress.IPv4Address(client).packed
        + ipaddress.IPv4Address("127.0.0.1").packed
        + struct.pack("!HH", port, 8443)
    )
    return SIGNATURE + b"\x21\x11" + struct.pack("!H", len(body)) + body


LOCAL_V2 = SIGNATURE + b"\x20\x00" + struct.pack("!H", 0)  # the balancer's own connection


def request(
    server: Server,
    source: str,
    prefix: bytes,
    path: str,
    body: dict[str, object] | None = None,
    cert: tuple[str, str] | None = None,
) -> tuple[int, str]:
    """One request over TLS from the address `source`, `prefix` sent before the TLS:
    (status, body)."""
    address = ("127.0.0.1", server.port)
    with socket.create_connection(address, timeout=20, source_address=(source, 0)) as raw:
        raw.sendall(prefix)
        with server.tls(cert).wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            data = json.dumps(body).encode() if body is not None else b""
            method = "POST" if body is not None else "GET"
            head = (
                f"{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n"
                f"content-type: application/json\r\ncontent-length: {len(data)}\r\n\r\n"
            )
            tls.sendall(head.encode() + data)
            answer = b""
            while chunk := tls.recv(65536):
                answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2].decode()


def healthy_via_balancer(balancer: str) -> Callable[[Server], bool]:
    """A `start_server(healthy=...)` probe for a server that trusts `balancer`."""

    def probe(server: Server) -> bool:
        return request(server, balancer, LOCAL_V2, "/healthz")[0] == 200

    return probe


def issued_from(home: Home, cn: str) -> str | None:
    """The audit trail's address for the issuance of the certificate named `cn`."""
    entries = json.loads(home.cli("audit", "list", "--action", "cert.issue", "--json").stdout)
    for entry in entries:
        if cn in json.dumps(entry["details"]):
            return str(entry["address"]) if entry["address"] is not None else None
    raise AssertionError(f"no cert.issue entry for {cn}: {entries}")
