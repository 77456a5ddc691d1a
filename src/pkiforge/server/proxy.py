"""PROXY protocol v2: the client address a TLS-passthrough load balancer puts in front of the
TLS bytes (haproxy.org/download/2.6/doc/proxy-protocol.txt, §2.2).

The header is read with exact-length reads from the socket, before TLS, and only from a peer
in the trusted list; parsing is proxy-protocol's (`ProxyProtocolV2.unpack`). What is accepted
is narrow: the v2 signature and version, the PROXY command over TCP/IPv4 or TCP/IPv6 (the
client's address replaces the peer's), or the LOCAL command (the balancer's own connection,
e.g. a health check: the peer's address stays). Anything else, a header over `MAX_DATA`
bytes, or one not complete within the deadline, closes the connection. TLVs are skipped.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import struct
from collections.abc import Iterable

from proxyprotocol import ProxyProtocolIncompleteError
from proxyprotocol.result import ProxyResultIPv4, ProxyResultIPv6, ProxyResultLocal
from proxyprotocol.v2 import ProxyProtocolV2

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = tuple[str, int]

SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"  # §2.2: the first 12 bytes of every v2 header
FIXED = 16  # signature, version and command, family and transport, length
# the address block after the fixed part: 216 bytes at most (UNIX), TLVs beyond it; a
# balancer that adds TLVs (SSL, unique id) stays far below this
MAX_DATA = 1024
# §2.2: the address block's size for the two family/transport bytes accepted (TCP over IPv4,
# TCP over IPv6)
ADDRESSES = {0x11: 12, 0x21: 36}


class ProxyHeaderError(ValueError):
    """A trusted peer's connection did not start with a PROXY v2 header we accept."""


def trusted_networks(addresses: Iterable[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(a, strict=False) for a in addresses)


def is_trusted(peer: object, networks: tuple[Network, ...]) -> bool:
    """Whether a socket peer name (host, port, ...) is in one of `networks`."""
    if not networks or not isinstance(peer, tuple) or not peer:
        return False
    try:
        address = ipaddress.ip_address(str(peer[0]))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


def data_length(fixed: bytes) -> int:
    """The length the fixed part announces, once its signature and version are checked.

    Raises:
        ProxyHeaderError: not a v2 header, or one longer than MAX_DATA.
    """
    if len(fixed) != FIXED or fixed[:12] != SIGNATURE:
        raise ProxyHeaderError("no PROXY v2 signature")
    if fixed[12] >> 4 != 2:
        raise ProxyHeaderError(f"PROXY protocol version {fixed[12] >> 4}, not 2")
    (length,) = struct.unpack_from("!H", fixed, 14)
    if length > MAX_DATA:
        raise ProxyHeaderError(f"PROXY header of {length} bytes, over {MAX_DATA}")
    return int(length)


def parse(header: bytes) -> Address | None:
    """The client address of a complete v2 header, or None for LOCAL (keep the peer's).

    Raises:
        ProxyHeaderError: anything but PROXY over TCP/IPv4 or TCP/IPv6, or LOCAL; a header
            shorter or longer than it says; a bad checksum.
    """
    if len(header) < FIXED or len(header) != FIXED + data_length(header[:FIXED]):
        raise ProxyHeaderError("PROXY header length does not match its contents")
    command = header[12] & 0x0F
    if command not in (0x0, 0x1):
        raise ProxyHeaderError(f"PROXY command {command:#x}, not LOCAL or PROXY")
    if command == 0x1:
        addresses = ADDRESSES.get(header[13])
        if addresses is None:
            raise ProxyHeaderError(f"PROXY family/transport {header[13]:#04x}, not TCP4 or TCP6")
        if len(header) - FIXED < addresses:
            raise ProxyHeaderError("PROXY header shorter than its addresses")
    try:
        result = ProxyProtocolV2().unpack(header)
    except ProxyProtocolIncompleteError:
        raise ProxyHeaderError("PROXY header shorter than its addresses") from None
    except (ValueError, struct.error) as exc:  # syntax, checksum; addresses cut short
        raise ProxyHeaderError(f"malformed PROXY header: {exc}") from None
    if isinstance(result, ProxyResultLocal):
        return None
    if isinstance(result, ProxyResultIPv4 | ProxyResultIPv6):
        host, port = result.source
        return str(host), int(port)
    raise ProxyHeaderError("PROXY header without a TCP source address")


async def _read_exactly(sock: socket.socket, size: int) -> bytes:
    """`size` bytes from a non-blocking socket, never one more: what follows is the TLS."""
    loop = asyncio.get_running_loop()
    data = b""
    while len(data) < size:
        chunk = await loop.sock_recv(sock, size - len(data))
        if not chunk:
            raise ProxyHeaderError("connection closed inside the PROXY header")
        data += chunk
    return data


async def read_header(sock: socket.socket) -> Address | None:
    """Read one v2 header from `sock` (no byte after it) and parse it; see `parse`.

    Raises:
        ProxyHeaderError: as `parse`, or the connection closed first.
        OSError: the socket failed.
    """
    fixed = await _read_exactly(sock, FIXED)
    rest = await _read_exactly(sock, data_length(fixed))
    return parse(fixed + rest)
