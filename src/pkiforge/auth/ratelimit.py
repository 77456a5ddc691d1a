"""Brute-force protection: block a client address after repeated authentication failures.

`max_failures` failures inside `window_seconds` (counted from the first one) block the
address for `block_seconds`; while blocked, `check` raises `RateLimited` with the seconds
left. Successful requests do not reset the count, so interleaving a valid request does not
buy an attacker more guesses.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from pkiforge.clock import Clock, SystemClock
from pkiforge.errors import RateLimited, StoreUnavailable
from pkiforge.redis_calls import RedisCalls

if TYPE_CHECKING:
    from redis import Redis

__all__ = ["FailurePolicy", "FailureTracker", "InMemoryFailureTracker", "RedisFailureTracker"]


@dataclass(frozen=True, slots=True)
class FailurePolicy:
    """How many failures, inside which window, block for how long."""

    max_failures: int = 10
    window_seconds: int = 60
    block_seconds: int = 300


class FailureTracker(Protocol):
    """Counts authentication failures per client address."""

    def check(self, client: str) -> None:
        """Raise `RateLimited` while `client` is blocked; `StoreUnavailable` if unsure."""
        ...

    def record_failure(self, client: str) -> None:
        """Count one failure; blocks the client when the threshold is reached."""
        ...


def _blocked(seconds: float) -> RateLimited:
    retry = max(1, math.ceil(seconds))
    return RateLimited(
        f"too many failed authentication attempts; retry in {retry} s", retry_after=retry
    )


class InMemoryFailureTracker:
    """A thread-safe failure tracker for one process."""

    def __init__(self, policy: FailurePolicy | None = None, *, clock: Clock | None = None) -> None:
        self._policy = policy or FailurePolicy()
        self._clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[dt.datetime, int]] = {}  # client -> (window start, count)
        self._blocked: dict[str, dt.datetime] = {}  # client -> blocked until

    def check(self, client: str) -> None:
        now = self._clock.now()
        with self._lock:
            until = self._blocked.get(client)
            if until is None:
                return
            if until <= now:
                del self._blocked[client]
                return
        raise _blocked((until - now).total_seconds())

    def record_failure(self, client: str) -> None:
        now = self._clock.now()
        policy = self._policy
        with self._lock:
            self._prune(now)
            start, count = self._windows.get(client, (now, 0))
            if now - start >= dt.timedelta(seconds=policy.window_seconds):
                start, count = now, 0
            count += 1
            if count >= policy.max_failures:
                self._windows.pop(client, None)
                self._blocked[client] = now + dt.timedelta(seconds=policy.block_seconds)
            else:
                self._windows[client] = (start, count)

    def _prune(self, now: dt.datetime) -> None:
        if len(self._windows) + len(self._blocked) < 10_000:
            return
        window = dt.timedelta(seconds=self._policy.window_seconds)
        self._windows = {c: w for c, w in self._windows.items() if now - w[0] < window}
        self._blocked = {c: until for c, until in self._blocked.items() if until > now}


# One atomic step: count, start the window on the first failure, block at the threshold.
_RECORD_SCRIPT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
if count >= tonumber(ARGV[2]) then
  redis.call('SET', KEYS[2], '1', 'EX', ARGV[3])
  redis.call('DEL', KEYS[1])
end
return count
"""


class RedisFailureTracker:
    """Failure counts in Redis, shared by every replica; no read-then-write race."""

    def __init__(
        self,
        client: Redis,
        policy: FailurePolicy | None = None,
        *,
        prefix: str = "pkiforge:authfail:",
    ) -> None:
        self._client = client
        self._pttl = RedisCalls(client)  # the check runs on every request
        self._policy = policy or FailurePolicy()
        self._prefix = prefix

    def check(self, client: str) -> None:
        from redis.exceptions import RedisError

        try:
            remaining_ms = int(self._pttl("PTTL", self._prefix + "blocked:" + client))
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(
                f"failure tracker unavailable: {type(exc).__name__}", internal=str(exc)
            ) from exc
        if remaining_ms > 0:
            raise _blocked(remaining_ms / 1000)

    def record_failure(self, client: str) -> None:
        from redis.exceptions import RedisError

        policy = self._policy
        keys = (self._prefix + "count:" + client, self._prefix + "blocked:" + client)
        try:
            self._client.eval(
                _RECORD_SCRIPT,
                2,
                *keys,
                policy.window_seconds,
                policy.max_failures,
                policy.block_seconds,
            )
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(
                f"failure tracker unavailable: {type(exc).__name__}", internal=str(exc)
            ) from exc
