"""Where the synchronous core runs: in the event loop, or in a worker thread.

The core (CA, store, registry) is synchronous. FastAPI would run each synchronous endpoint,
each synchronous dependency and each response validation in its own trip to a thread pool;
under load those trips and the GIL hand-offs between request threads cost more CPU than
issuing the certificate. Endpoints and dependencies that call the core are written as plain
functions and wrapped with `@blocking`: FastAPI sees a coroutine, and `AppState.run` decides,
per process, whether the call runs inline (SQLite: every step is local CPU, a thread only adds
contention) or in a bounded thread pool (PostgreSQL: network waits overlap).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

if TYPE_CHECKING:
    from pkiforge.api.state import AppState

P = ParamSpec("P")
R = TypeVar("R")


def blocking(fn: Callable[P, R]) -> Callable[P, Coroutine[Any, Any, R]]:
    """Make a synchronous endpoint/dependency taking `state: StateDep` run via `state.run`."""
    if "state" not in inspect.signature(fn).parameters:
        raise TypeError(f"{fn.__qualname__} needs a `state` parameter to be @blocking")

    @functools.wraps(fn)
    async def call(*args: P.args, **kwargs: P.kwargs) -> R:
        state: AppState = kwargs["state"]  # type: ignore[assignment]
        return await state.run(functools.partial(fn, *args, **kwargs))

    return call
