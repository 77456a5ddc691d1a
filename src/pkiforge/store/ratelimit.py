"""Issuance rate limits per service: a sliding window, in-process or shared through Redis.

The Redis limiter runs one Lua script per hit (drop entries older than the window, count, add
if under the limit), so replicas never race between reading and writing the count. Redis
errors fail closed (StoreUnavailable -> 503).
"""

from __future__ import annotations

import collections
import math
import threading
import uuid
from typing import TYPE_CHECKING

from pkiforge.clock import Clock, SystemClock
from pkiforge.errors import RateLimited, StoreUnavailable

if TYPE_CHECKING:
    from redis import Redis


def _refuse(limit: int, window: float, retry_after: float) -> RateLimited:
    retry = max(1, math.ceil(retry_after))
    return RateLimited(
        f"issuance rate limit of {limit} per {int(window)} s reached for this service; "
        f"retry in {retry} s",
        retry_after=retry,
    )


class InMemoryRateLimiter:
    """A sliding-window log per key, for one process."""

    def __init__(self, limit: int, window_seconds: float, clock: Clock | None = None) -> None:
        self.limit, self.window = limit, window_seconds
        self._clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._hits: dict[str, collections.deque[float]] = {}

    def hit(self, key: str) -> None:
        now = self._clock.now().timestamp()
        with self._lock:
            hits = self._hits.setdefault(key, collections.deque())
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                raise _refuse(self.limit, self.window, hits[0] + self.window - now)
            hits.append(now)


# KEYS[1] the window set; ARGV: limit, window ms, unique member. Redis' own clock (TIME) is
# used so replicas with skewed clocks still share one window. Returns 0, or ms to wait.
_SLIDING_WINDOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return math.max(1, tonumber(oldest[2]) + window - now)
end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], window)
return 0
"""


class RedisRateLimiter:
    """The same sliding window in Redis, shared by every replica."""

    def __init__(self, client: Redis, limit: int, window_seconds: float, prefix: str) -> None:
        self.limit, self.window = limit, window_seconds
        self._client, self._prefix = client, prefix
        self._script = client.register_script(_SLIDING_WINDOW)

    def hit(self, key: str) -> None:
        from redis.exceptions import RedisError

        try:
            wait_ms = int(
                self._script(
                    keys=[f"{self._prefix}issue:{key}"],
                    args=[self.limit, int(self.window * 1000), uuid.uuid4().hex],
                )
            )
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(
                f"rate limiter unavailable: {type(exc).__name__}", internal=str(exc)
            ) from None
        if wait_ms > 0:
            raise _refuse(self.limit, self.window, wait_ms / 1000)
