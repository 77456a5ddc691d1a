"""Each request's id: in the `X-Request-ID` header of every answer the app gives, in the
`request_id` of problem+json bodies, and in the log lines about the request, so that an
operator can find what a client reports.

A client may send its own `X-Request-ID` (to follow a request through its own logs). It is
kept if it is short and safe to log and echo: 1 to 64 of `A-Z a-z 0-9 . _ -`, the first such
header only. Anything else is replaced by a fresh random id (32 hex digits).
"""

from __future__ import annotations

import os
import random
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = "X-Request-ID"
_RAW = HEADER.lower().encode()
_SAFE = re.compile(rb"[A-Za-z0-9._-]{1,64}")
_STATE_KEY = "request_id"
# ids need to be unique, not secret: a generator seeded once per process from the OS, instead
# of a system call (uuid4, os.urandom) on every request
_IDS = random.Random(os.urandom(32))  # noqa: S311


def new_id() -> str:
    """A fresh id (32 hex digits), for an answer given before there is a request scope (the
    HTTP layer's own answers, server/guard.py)."""
    return f"{_IDS.getrandbits(128):032x}"


def request_id(scope: Scope) -> str:
    """This request's id, made on first use and kept in the scope's state (`RequestId` makes
    it first; an app built without it still gets ids)."""
    state = scope.setdefault("state", {})
    found = state.get(_STATE_KEY)
    if found is None:
        found = state[_STATE_KEY] = _offered(scope) or new_id()
    return str(found)


def _offered(scope: Scope) -> str | None:
    """The client's own id, if its first X-Request-ID header is safe to keep."""
    for name, value in scope.get("headers", ()):
        if name == _RAW:
            return value.decode("ascii") if _SAFE.fullmatch(value) else None
    return None


class RequestId:
    """ASGI middleware: every HTTP answer carries its request's id in `X-Request-ID`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = (_RAW, request_id(scope).encode("ascii"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                if not any(name.lower() == _RAW for name, _ in headers):
                    headers.append(header)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_id)
