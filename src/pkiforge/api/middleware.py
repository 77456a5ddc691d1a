"""ASGI middleware of the API: a body-size limit (413 before reading it all), latency, and
answers held until their commits are on disk."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import Histogram
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pkiforge.api.problems import from_error, problem
from pkiforge.errors import StoreUnavailable
from pkiforge.store import durable
from pkiforge.store.durable import WalSync


class BodyLimit:
    """Refuse bodies over `max_bytes`: by Content-Length at once, else while streaming."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _content_length(scope)
        if length is not None and length > self.max_bytes:
            response = problem(413, "too-large", self._detail(), scope=scope, field="body")
            await response(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise HTTPException(413, self._detail())  # FastAPI re-raises it as is
            return message

        await self.app(scope, limited, send)

    def _detail(self) -> str:
        return f"request body is larger than {self.max_bytes} bytes"


def _content_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", ()):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class Latency:
    """Observe each request's duration by method, route template and status."""

    def __init__(self, app: ASGIApp, histogram: Histogram) -> None:
        self.app, self.histogram = app, histogram

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        start = time.perf_counter()

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            self.histogram.labels(
                method=scope["method"], route=_route(scope), status=str(status)
            ).observe(time.perf_counter() - start)


def _route(scope: Scope) -> str:
    route: Any = scope.get("route")
    path = getattr(route, "path_format", None)  # the template without convertors
    return path if isinstance(path, str) else "unmatched"


class AnswerWhenDurable:
    """Hold the answer of a request that committed until its commit is on disk (store/durable).

    Added outside `TakeTurns`, so a request gives its turn back before it waits for the sync
    and the next request runs meanwhile. If the sync fails, the request is answered 503 instead
    of what the app said: the write is in the database, but may not survive a power loss.
    """

    def __init__(self, app: ASGIApp, sync: WalSync, held: Histogram) -> None:
        self.app, self.sync, self.held = app, sync, held

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        writes, token = durable.track()
        replaced = False

        async def held(message: Message) -> None:
            nonlocal replaced
            if replaced:
                return  # the app's own answer is dropped: a 503 went out instead
            if message["type"] == "http.response.start" and writes.committed:
                start = time.perf_counter()
                try:
                    await self.sync.barrier()
                except StoreUnavailable as exc:
                    replaced = True
                    await from_error(exc, scope)(scope, receive, send)
                    return
                finally:
                    self.held.observe(time.perf_counter() - start)
            await send(message)

        try:
            await self.app(scope, receive, held)
        finally:
            durable.untrack(token)
