"""PROXY protocol v2 headers (server/proxy.py): what is accepted, and every malformed or
unwanted header refused. The headers are built here byte by byte from the specification
(haproxy.org/download/2.6/doc/proxy-protocol.txt §2.2), not with the parsing library."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import struct

import pytest

from pkiforge.server.proxy import (
    MAX_DATA,
    SIGNATURE,
    ProxyHeaderError,
    is_trusted,
    parse,
    read_header,
    trusted_networks,
)

TCP4, TCP6, UDP4, UNIX, UNSPEC = 0x11, 0x21, 0x12, 0x31, 0x00
PROXY, LOCAL = 0x21, 0x20  # version 2 in the high nibble, the command in the low one


def header(command: int, family: int, body: bytes, length: int | None = None) -> bytes:
    size = len(body) if length is None else length
    return SIGNATURE + bytes([command, family]) + struct.pack("!H", size) + body


def ipv4(src: str, sport: int, dst: str = "10.0.0.1", dport: int = 8443) -> bytes:
    return (
        ipaddress.IPv4Address(src).packed
        + ipaddress.IPv4Address(dst).packed
        + struct.pack("!HH", sport, dport)
    )


def ipv6(src: str, sport: int, dst: str = "fd00::1", dport: int = 8443) -> bytes:
    return (
        ipaddress.IPv6Address(src).packed
        + ipaddress.IPv6Address(dst).packed
        + struct.pack("!HH", sport, dport)
    )


# a TLV after the addresses (PP2_TYPE_UNIQUE_ID, 0x05): skipped
TLV = bytes([0x05]) + struct.pack("!H", 4) + b"abcd"


@pytest.mark.parametrize(
    ("data", "client"),
    [
        (header(PROXY, TCP4, ipv4("203.0.113.7", 51000)), ("203.0.113.7", 51000)),
        (header(PROXY, TCP6, ipv6("2001:db8::7", 443)), ("2001:db8::7", 443)),
        (header(PROXY, TCP4, ipv4("198.51.100.1", 1) + TLV), ("198.51.100.1", 1)),
        (header(LOCAL, UNSPEC, b""), None),
        (header(LOCAL, TCP4, ipv4("127.0.0.1", 1)), None),  # LOCAL: addresses are ignored
    ],
    ids=["tcp4", "tcp6", "tcp4-with-tlv", "local", "local-with-addresses"],
)
def test_accepted(data: bytes, client: tuple[str, int] | None) -> None:
    assert parse(data) == client


GOOD = header(PROXY, TCP4, ipv4("203.0.113.7", 51000))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"PROXY TCP4 203.0.113.7 10.0.0.1 51000 8443\r\n", "signature"),  # v1 text
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(21), "signature"),  # TLS
        (GOOD[:11] + b"X" + GOOD[12:], "signature"),
        (GOOD[:12] + b"\x11" + GOOD[13:], "version 1"),
        (GOOD[:12] + b"\x31" + GOOD[13:], "version 3"),
        (GOOD[:12] + b"\x22" + GOOD[13:], "command"),
        (header(PROXY, UDP4, ipv4("203.0.113.7", 1)), "TCP4 or TCP6"),
        (header(PROXY, UNIX, bytes(216)), "TCP4 or TCP6"),
        (header(PROXY, UNSPEC, b""), "TCP4 or TCP6"),
        (header(PROXY, 0x41, bytes(12)), "TCP4 or TCP6"),
        (header(PROXY, TCP4, ipv4("203.0.113.7", 1)[:8]), "shorter"),
        (header(PROXY, TCP6, ipv4("203.0.113.7", 1)), "shorter"),
        (header(PROXY, TCP4, b"", length=0), "shorter"),
        (header(PROXY, TCP4, ipv4("203.0.113.7", 1), length=20), "length"),
        (header(PROXY, TCP4, ipv4("203.0.113.7", 1), length=8), "length"),
        (header(PROXY, TCP4, bytes(MAX_DATA + 1)), "over"),
        (GOOD[:10], "length"),
    ],
    ids=[
        "v1-text", "tls-hello", "bad-signature", "version-1", "version-3", "command-2",
        "udp", "unix", "proxy-unspec", "unknown-family", "tcp4-cut", "tcp6-with-ipv4-length",
        "no-addresses", "longer-than-data", "shorter-than-data", "too-long", "cut-in-fixed",
    ],
)  # fmt: skip
def test_refused(data: bytes, reason: str) -> None:
    with pytest.raises(ProxyHeaderError, match=reason):
        parse(data)


def test_read_takes_the_header_and_not_one_byte_more() -> None:
    """Over a real socket pair, in small pieces: what follows the header stays unread."""

    async def run() -> tuple[tuple[str, int] | None, bytes]:
        ours, theirs = socket.socketpair()
        with ours, theirs:
            ours.setblocking(False)
            data = GOOD + b"\x16\x03\x01TLS-FOLLOWS"
            loop = asyncio.get_running_loop()

            async def send() -> None:
                for i in range(0, len(data), 5):
                    theirs.sendall(data[i : i + 5])
                    await asyncio.sleep(0.01)

            sending = loop.create_task(send())
            client = await read_header(ours)
            await sending
            rest = await loop.sock_recv(ours, 100)
            return client, rest

    client, rest = asyncio.run(run())
    assert client == ("203.0.113.7", 51000)
    assert rest == b"\x16\x03\x01TLS-FOLLOWS"


def test_read_refuses_a_close_inside_the_header() -> None:
    async def run() -> None:
        ours, theirs = socket.socketpair()
        with ours:
            ours.setblocking(False)
            theirs.sendall(GOOD[:20])
            theirs.close()
            await read_header(ours)

    with pytest.raises(ProxyHeaderError, match="closed inside"):
        asyncio.run(run())


@pytest.mark.parametrize(
    ("peer", "trusted"),
    [
        (("10.0.0.5", 1), True),
        (("10.0.0.6", 1), False),
        (("192.168.1.200", 1), True),
        (("::ffff:10.0.0.5", 1, 0, 0), True),  # IPv4-mapped, from a dual-stack listener
        (("fd00::5", 1, 0, 0), True),
        (("fd00::6", 1, 0, 0), False),
        ("/run/socket", False),
        (None, False),
    ],
    ids=["listed", "neighbour", "in-network", "mapped", "ipv6", "ipv6-neighbour", "unix", "none"],
)
def test_trusted_peers(peer: object, trusted: bool) -> None:
    networks = trusted_networks(["10.0.0.5/32", "192.168.1.0/24", "fd00::5"])
    assert is_trusted(peer, networks) is trusted


def test_nobody_is_trusted_by_default() -> None:
    assert is_trusted(("127.0.0.1", 1), trusted_networks([])) is False
