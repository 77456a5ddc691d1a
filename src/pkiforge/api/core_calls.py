"""How endpoints call the synchronous core: `@core_call`, and `AppState.run` underneath.

FastAPI runs a plain `def` endpoint in its thread pool and waits there for everything it does,
including the sync of the disk that makes a SQLite commit durable. An endpoint decorated with
`@core_call` becomes a coroutine that hands the work to `AppState.run`, which runs it on the
event loop (SQLite: every step is local and short, and a thread would only add hand-offs
between threads holding the GIL) or in the thread pool (PostgreSQL: network waits overlap),
and then awaits the sync its commits owe, sharing it with the other requests of the process.
An endpoint left undecorated still answers only after its commits are durable: its thread
waits for the sync instead.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar, cast

from starlette.requests import Request

from pkiforge.api.deps import app_state
from pkiforge.api.state import AppState

P = ParamSpec("P")
R = TypeVar("R")


def core_call(fn: Callable[P, R]) -> Callable[P, Coroutine[Any, Any, R]]:
    """Make a synchronous endpoint that takes `state` (StateDep) or `request` run via
    `AppState.run`."""
    parameters = inspect.signature(fn).parameters
    if "state" not in parameters and "request" not in parameters:
        raise TypeError(f"{fn.__qualname__} needs a `state` or `request` parameter")

    @functools.wraps(fn)
    async def call(*args: P.args, **kwargs: P.kwargs) -> R:
        state = cast(AppState | None, kwargs.get("state"))
        if state is None:
            state = app_state(cast(Request, kwargs["request"]))
        return await state.run(functools.partial(fn, *args, **kwargs))

    return call
