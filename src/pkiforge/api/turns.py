"""Requests take turns at the synchronous core, one at a time and in arrival order.

When the core runs inline in the event loop (SQLite; api/blocking.py), a worker handles its
requests one after another anyway. What matters is the order. The event loop runs every task
that is ready before it looks at its sockets again, so the requests read in one look were all
handled before any request that arrived meanwhile was even read. A client answered early in such
a run sends its next request at once, but the one answered last sends it just after the loop
has looked: that request waits a whole run before it is read, then its own turn. With eight
keep-alive clients per worker and a constant 3.5 ms of work per request, plain uvicorn served
one request in eight at about twice the latency of the rest (p99 2.2 times p50).

Here a request takes the turn when it first calls the core and gives it back when its response
starts (or when it waits for more of its body, so that a slow client never holds it). Waiters
get the turn in the order they asked, each in a later pass of the event loop, so the loop reads
its sockets between two requests and a request that arrived is queued behind the ones already
waiting, not behind a whole run.

Requests that never call the core (health checks, metrics) do not queue. With the core in
threads (PostgreSQL) there is no turn to take: requests overlap there.
"""

from __future__ import annotations

import asyncio
from collections import deque
from contextvars import ContextVar
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send


@dataclass
class _Turn:
    turns: Turns | None = None  # the turns this request holds one of, if any


_current: ContextVar[_Turn | None] = ContextVar("pkiforge_turn", default=None)


class Turns:
    """The turns of one process (one event loop): one holder at a time, waiters in order.

    A turn given back is passed on from a callback scheduled for the next pass of the event
    loop, and the waiter it wakes runs in the pass after that: the loop reads its sockets in
    between, so what arrived meanwhile is queued before the next request runs.
    """

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._held = False
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def take(self) -> None:
        """Wait for the turn, unless this request holds it or is not taking turns."""
        turn = _current.get()
        if turn is None or turn.turns is not None:
            return
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # turns belong to one event loop (tests run several)
            self._loop, self._held, self._waiters = loop, False, deque()
        if self._held or self._waiters:
            waiter = loop.create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._pass_on()  # it was handed to us as we were cancelled: pass it on
                else:
                    self._waiters.remove(waiter)
                raise
        self._held = True
        turn.turns = self

    def give_back(self, turn: _Turn) -> None:
        """Hand the turn of `turn`'s request on to the next waiter, in a later loop pass."""
        if turn.turns is self:
            turn.turns = None
            asyncio.get_running_loop().call_soon(self._pass_on)

    def _pass_on(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():  # a cancelled waiter is skipped
                waiter.set_result(None)  # still held: it is the waiter's now
                return
        self._held = False


class TakeTurns:
    """ASGI middleware: each HTTP request may take the turn once it calls the core."""

    def __init__(self, app: ASGIApp, turns: Turns) -> None:
        self.app, self.turns = app, turns

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        turn = _Turn()
        token = _current.set(turn)

        async def receiving() -> Message:
            self.turns.give_back(turn)  # never wait on the network holding the turn
            return await receive()

        async def sending(message: Message) -> None:
            self.turns.give_back(turn)  # the work is done once the response starts
            await send(message)

        try:
            await self.app(scope, receiving, sending)
        finally:
            self.turns.give_back(turn)
            _current.reset(token)
