"""Whether the configured Redis servers answer: the readiness Redis probe.

A replica whose Redis is down refuses every signed request (the nonce store and the failure
tracker fail closed) and every issuance with a shared rate limit: it cannot do its job, and
the load balancer should send clients elsewhere. The probe PINGs each configured Redis on a
client of its own, with a short timeout (`TIMEOUT_SECONDS`), and keeps the outcome for
`CACHE_SECONDS`, so any number of `/readyz` calls and scrapes cost one PING per Redis and
process in that time, and a Redis that hangs holds a readiness check for at most the timeout.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pkiforge.redis_calls import RedisCalls

if TYPE_CHECKING:
    from redis import Redis

TIMEOUT_SECONDS = 0.5
CACHE_SECONDS = 1.0


@dataclass(frozen=True)
class RedisCheck:
    """One check's outcome; `detail` (for the log only) names the failed setting and cause."""

    ok: bool
    detail: str | None = None


class RedisProbe:
    """PING each Redis (by the setting that names it), at most once per `CACHE_SECONDS`."""

    def __init__(
        self,
        clients: dict[str, Redis],
        *,
        cache_seconds: float = CACHE_SECONDS,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        # RedisCalls: a connection kept from before a Redis restart is retried once, so the
        # first probe after a restart does not report a Redis that is back as down
        self._calls = {setting: RedisCalls(client) for setting, client in clients.items()}
        self._cache_seconds = cache_seconds
        self._now = now
        self._lock = threading.Lock()
        self._until = float("-inf")
        self._last = RedisCheck(True)

    @classmethod
    def for_urls(cls, urls: dict[str, str]) -> RedisProbe:
        """A probe of each URL (keyed by its setting), on clients of its own with short
        timeouts and no retries of their own.

        Raises:
            ValueError: a URL cannot be parsed.
        """
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        clients = {
            setting: redis.Redis.from_url(
                url,
                socket_timeout=TIMEOUT_SECONDS,
                socket_connect_timeout=TIMEOUT_SECONDS,
                retry=Retry(NoBackoff(), 0),
            )
            for setting, url in urls.items()
        }
        return cls(clients)

    def check(self) -> RedisCheck:
        """Whether every Redis answered its PING (now, or within the last `cache_seconds`)."""
        from redis.exceptions import RedisError

        with self._lock:
            if self._now() < self._until:
                return self._last
            failed: list[str] = []
            for setting, call in self._calls.items():
                try:
                    call("PING")
                except (RedisError, OSError) as exc:
                    failed.append(f"{setting}: {type(exc).__name__}: {exc}")
            self._last = RedisCheck(not failed, "; ".join(failed) or None)
            self._until = self._now() + self._cache_seconds
            return self._last
