"""The HTTP layer's bounds: how large a request head may be, how long each part of a request
may take, and how many connections a worker and one client address may hold.

`HeadScanner` counts a request head's bytes as they arrive, before the HTTP parser sees them:
httptools has no size limit of its own and accumulates a header in memory however long it is,
so the bytes over a limit must never reach it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import Enum

from pkiforge.settings import ServerSettings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class HttpLimits:
    """Per request, per connection and per worker; sizes in bytes with line ends, times in s."""

    max_request_line: int = 8 * 1024
    max_header: int = 8 * 1024  # one header field line
    max_head: int = 64 * 1024  # request line and all header lines together
    max_headers: int = 100
    idle_timeout: float = 5.0  # after the handshake and between requests, nothing received
    head_timeout: float = 10.0  # from the first byte of a request to the end of its head
    body_timeout: float = 30.0  # from the end of the head to the end of the body
    max_connections: int = 1000  # per worker
    max_connections_per_client: int = 100  # per worker and client address
    exempt: tuple[Network, ...] = ()  # addresses without a per-client cap (trusted proxies)

    @classmethod
    def from_settings(cls, server: ServerSettings) -> HttpLimits:
        return cls(
            max_request_line=server.max_request_line_bytes,
            max_header=server.max_header_bytes,
            max_head=server.max_head_bytes,
            max_headers=server.max_headers,
            idle_timeout=float(server.idle_timeout_seconds),
            head_timeout=server.head_timeout_seconds,
            body_timeout=server.body_timeout_seconds,
            max_connections=server.max_connections,
            max_connections_per_client=server.max_connections_per_client,
            exempt=tuple(ipaddress.ip_network(n, strict=False) for n in server.trusted_proxies),
        )

    def capped(self, host: str) -> bool:
        """Whether connections from `host` count against the per-client cap."""
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return True
        return not any(address in network for network in self.exempt)


class Over(Enum):
    """Which head limit a request went over."""

    REQUEST_LINE = "request line"
    HEADER = "header field"
    HEAD = "request head"
    HEADERS = "header count"


class HeadScanner:
    """Counts the lines of one request head (RFC 9112 §2.1: a request line, header field
    lines, an empty line) without keeping them."""

    def __init__(self, limits: HttpLimits) -> None:
        self.limits = limits
        self.reset()

    def reset(self) -> None:
        """Start a new request head."""
        self.total = 0  # bytes of this head so far
        self.line = 0  # bytes of the current line so far
        self.first = 0  # the current line's first byte
        self.headers = 0
        self.started = False  # the request line is complete

    def feed(self, data: bytes) -> tuple[int, Over | None]:
        """Scan the next bytes of the head: (where the head ends in `data`, or -1 if it goes
        on; the limit it went over, or None). Bytes after the end are not scanned."""
        pos, size = 0, len(data)
        while pos < size:
            if self.line == 0:
                self.first = data[pos]
            newline = data.find(b"\n", pos)
            end = size if newline < 0 else newline + 1
            self.line += end - pos
            self.total += end - pos
            over = self._over()
            if over is not None:
                return -1, over
            if newline < 0:
                return -1, None
            blank = self.line == 1 or (self.line == 2 and self.first == 0x0D)
            self.line, pos = 0, end
            if blank:
                if self.started:
                    return end, None
                continue  # RFC 9112 §2.2: empty lines before a request line are ignored
            if not self.started:
                self.started = True
            else:
                self.headers += 1
                if self.headers > self.limits.max_headers:
                    return -1, Over.HEADERS
        return -1, None

    def _over(self) -> Over | None:
        if not self.started and self.line > self.limits.max_request_line:
            return Over.REQUEST_LINE
        if self.started and self.line > self.limits.max_header:
            return Over.HEADER
        if self.total > self.limits.max_head:
            return Over.HEAD
        return None

    @property
    def empty(self) -> bool:
        return self.total == 0
