"""The HTTP layer's bounds, applied to each connection before uvicorn's parser and the app.

`ConnectionGuard` sits in front of a uvicorn protocol's `data_received`: it counts each
request head with `HeadScanner` (over a limit: 414 or 431, the bytes never reach the parser),
runs the idle, head and body deadlines, and refuses a connection over the worker's or the
client address's cap. Its answers, and the one that replaces uvicorn's text/plain 400 for a
request the parser cannot read, are short problem+json bodies with `Connection: close`.

The protocol classes below override uvicorn internals (`data_received`, `connection_lost`,
`send_400_response`; they read `transport`, `connections`, `client`, `cycle` and `config`):
tests/server/test_uvicorn_contract.py checks them against the pinned uvicorn.
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from pkiforge.api.request_id import HEADER, new_id, request_id
from pkiforge.server.limits import HeadScanner, HttpLimits, Over

log = logging.getLogger("pkiforge.server")
# a closed connection's TLS shutdown waits this long for the peer, then the socket is dropped,
# so a client that never acknowledges cannot hold it (asyncio would wait 30 s)
LINGER_SECONDS = 2.0


@dataclass(frozen=True)
class Answer:
    """One of the HTTP layer's own answers: problem+json, `Connection: close`, and the
    request id (`X-Request-ID` and `request_id`, as the app's answers carry it)."""

    status: int
    reason: str
    slug: str
    detail: str
    extra: tuple[str, ...] = ()

    def render(self, rid: str) -> bytes:
        body = json.dumps(
            {
                "type": f"urn:pkiforge:problem:{self.slug}",
                "title": self.reason,
                "status": self.status,
                "detail": self.detail,
                "request_id": rid,
            }
        ).encode()
        head = [
            f"HTTP/1.1 {self.status} {self.reason}",
            "content-type: application/problem+json",
            f"content-length: {len(body)}",
            "connection: close",
            f"{HEADER.lower()}: {rid}",
            *self.extra,
        ]
        return "\r\n".join(head).encode() + b"\r\n\r\n" + body


MALFORMED = Answer(400, "Bad Request", "malformed-request", "malformed HTTP request")
TIMEOUT = Answer(408, "Request Timeout", "request-timeout", "the request took too long")
TOO_LARGE = {
    Over.REQUEST_LINE: Answer(
        414, "URI Too Long", "request-line-too-long", "request line too long"
    ),
    **{
        over: Answer(
            431,
            "Request Header Fields Too Large",
            "header-too-large",
            f"{over.value} over the limit",
        )
        for over in (Over.HEADER, Over.HEAD, Over.HEADERS)
    },
}
CLIENT_BUSY = Answer(
    429, "Too Many Requests", "too-many-connections", "too many connections from this address",
    ("retry-after: 1",),
)  # fmt: skip
WORKER_BUSY = Answer(
    503, "Service Unavailable", "too-many-connections", "too many connections",
    ("retry-after: 1",),
)  # fmt: skip


class _Cycle(Protocol):
    """What the guard reads of uvicorn's RequestResponseCycle (both implementations)."""

    more_body: bool
    disconnected: bool
    response_started: bool
    response_complete: bool
    message_event: asyncio.Event
    scope: dict[str, Any]  # the request's ASGI scope: its id is the app's


class _Served(Protocol):
    """What the guard reads of a uvicorn HTTP protocol (both implementations)."""

    transport: asyncio.Transport
    connections: set[Any]
    client: tuple[str, int] | None
    cycle: Any  # a _Cycle, or None before the first request


class _State(enum.Enum):
    HEAD = "head"  # waiting for, or reading, a request head
    BODY = "body"  # the head is complete; its body has not all arrived


class ConnectionGuard:
    """The bounds of one connection."""

    def __init__(self, protocol: _Served, limits: HttpLimits) -> None:
        self.protocol = protocol
        self.limits = limits
        self.scanner = HeadScanner(limits)
        self.state = _State.HEAD
        self.before: Any = None  # the cycle before the current request's
        self.timer: asyncio.TimerHandle | None = None
        self.timer_for: _State | None = None
        self.linger: asyncio.TimerHandle | None = None
        self.closing = False

    # --- connection ---------------------------------------------------------------------------

    def admit(self) -> bool:
        """At connection_made: refuse a connection over a cap, else wait for its request."""
        connections, client = self.protocol.connections, self.protocol.client
        if len(connections) > self.limits.max_connections:
            why = f"{len(connections) - 1} open in this worker"
            self.refuse(WORKER_BUSY, f"connection refused: {why}")
            return False
        host = client[0] if client else None
        if host is not None and self.limits.capped(host):
            same = sum(1 for c in connections if (getattr(c, "client", None) or ("",))[0] == host)
            if same > self.limits.max_connections_per_client:
                self.refuse(CLIENT_BUSY, f"connection refused: {host} holds {same - 1}")
                return False
        self._arm(self.limits.idle_timeout, None, self._idle)
        return True

    def lost(self) -> None:
        """At connection_lost."""
        self.closing = True
        self._cancel()
        if self.linger is not None:
            self.linger.cancel()

    def refuse(
        self, answer: Answer, why: str, rid: str | None = None, level: int = logging.WARNING
    ) -> None:
        """Give `answer` under a request id (`rid`, else a new one), log it with `why`, close."""
        rid = rid or new_id()
        log.log(level, "request %s: %s %s: %s", rid, answer.status, answer.slug, why)
        self.answer(answer.render(rid))

    def answer(self, response: bytes | None) -> None:
        """Answer for the HTTP layer (if `response`) and close: nothing more is read here."""
        self.closing = True
        self._cancel()
        transport = self.protocol.transport
        if not transport.is_closing():
            if response is not None:
                transport.write(response)
            transport.close()
            self.linger = asyncio.get_running_loop().call_later(LINGER_SECONDS, transport.abort)

    # --- data -----------------------------------------------------------------------------------

    def received(self, data: bytes, feed: Callable[[bytes], None]) -> None:
        """In place of data_received: check the head's bytes, then hand them to `feed`."""
        while data and not self.closing:
            if self.state is _State.BODY:
                feed(data)
                self._fed()
                return
            if self.scanner.empty:  # the first byte of a request: its head has a deadline
                self._arm(self.limits.head_timeout, _State.HEAD, self._head_late)
            end, over = self.scanner.feed(data)
            if over is not None:
                self.refuse(TOO_LARGE[over], f"{self._who()}: {over.value} over the limit")
                return
            if end < 0:
                feed(data)
                return
            # the head ends here: the parser gets it alone, so that what follows is scanned
            # as the next request's head once this request is complete
            self.state, self.before = _State.BODY, self.protocol.cycle
            self._cancel()
            feed(data[:end])
            data = data[end:]
            self._fed()
            if self.protocol.transport.is_closing():
                return

    def _fed(self) -> None:
        """After the parser took bytes: follow the current request's body."""
        if self.state is not _State.BODY or self.closing:
            return
        cycle: _Cycle | None = self.protocol.cycle
        if cycle is None or cycle is self.before:
            return  # the parser holds the request until the one before is answered (h11)
        if cycle.more_body:
            if self.timer_for is not _State.BODY:
                self._arm(self.limits.body_timeout, _State.BODY, self._body_late)
            return
        self._cancel()
        self.state = _State.HEAD
        self.scanner.reset()

    def _who(self) -> str:
        client = self.protocol.client
        return client[0] if client else "a client"

    # --- deadlines ------------------------------------------------------------------------------

    def _arm(self, seconds: float, what: _State | None, then: Callable[[], None]) -> None:
        self._cancel()
        self.timer = asyncio.get_running_loop().call_later(seconds, then)
        self.timer_for = what

    def _cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer = self.timer_for = None

    def _idle(self) -> None:
        """Nothing received since the handshake: close without an answer (no request to
        answer), as at the keep-alive limit between requests."""
        self.timer = self.timer_for = None
        self.answer(None)

    def _head_late(self) -> None:
        self.timer = self.timer_for = None
        why = f"{self._who()}: request head not complete in {self.limits.head_timeout}s"
        cycle = self.protocol.cycle
        if cycle is not None and not cycle.response_complete:  # pipelined behind an answer
            log.warning("%s", why)
            self.answer(None)
            return
        self.refuse(TIMEOUT, why)

    def _body_late(self) -> None:
        self.timer = self.timer_for = None
        why = f"{self._who()}: request body not complete in {self.limits.body_timeout}s"
        cycle: _Cycle | None = self.protocol.cycle
        if cycle is None or cycle.response_started:
            log.warning("%s", why)
            self.answer(None)
            return
        # the app waits for the body: it gets a disconnect, the client a 408 under the id the
        # app gave the request
        rid = request_id(cycle.scope)
        cycle.disconnected = True
        cycle.message_event.set()
        self.refuse(TIMEOUT, why, rid)


def limits_of(config: Any) -> HttpLimits:
    """The limits a uvicorn config carries (server/config.py), else the defaults."""
    limits = getattr(config, "http_limits", None)
    return limits if isinstance(limits, HttpLimits) else HttpLimits()


class _Guarded:
    """What both HTTP protocols gain: a ConnectionGuard in front of the parser, and the
    client address a PROXY header gave (server/proxied.py). Mixed in before the protocol
    class, so `super()` is the uvicorn protocol's own method."""

    guard: ConnectionGuard
    proxied_client: tuple[str, int] | None = None
    client: Any
    config: Any

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        if self.proxied_client is not None:
            self.client = self.proxied_client
        self.guard = ConnectionGuard(self, limits_of(self.config))  # type: ignore[arg-type]
        self.guard.admit()

    def data_received(self, data: bytes) -> None:
        self.guard.received(data, super().data_received)  # type: ignore[misc]

    def connection_lost(self, exc: Exception | None) -> None:
        self.guard.lost()
        super().connection_lost(exc)  # type: ignore[misc]

    def send_400_response(self, msg: str) -> None:
        self.guard.refuse(MALFORMED, f"malformed request: {msg}", level=logging.INFO)


class GuardedHttpToolsProtocol(_Guarded, HttpToolsProtocol):  # type: ignore[misc]
    """httptools behind a ConnectionGuard."""


class GuardedH11Protocol(_Guarded, H11Protocol):  # type: ignore[misc]
    """h11 behind a ConnectionGuard (h11's own head limit set to the same size)."""
