"""Replay protection: the `NonceStore` port, an in-process store and a Redis store."""

from __future__ import annotations

import datetime as dt
import heapq
import threading
from typing import TYPE_CHECKING, Protocol

from pkiforge.clock import Clock, SystemClock
from pkiforge.errors import StoreUnavailable
from pkiforge.redis_calls import RedisCalls

if TYPE_CHECKING:
    from redis import Redis

__all__ = ["InMemoryNonceStore", "NonceStore", "RedisNonceStore", "nonce_key"]


class NonceStore(Protocol):
    """Remembers (key id, nonce) pairs for a while."""

    def check_and_store(self, key_id: str, nonce: str, ttl_seconds: int) -> bool:
        """Store the pair for `ttl_seconds`; False when it was already there.

        Raises:
            StoreUnavailable: the store cannot answer (callers must refuse the request).
        """
        ...


def nonce_key(key_id: str, nonce: str) -> str:
    """An unambiguous store key for the pair (the key id's length keeps ':' from colliding)."""
    return f"{len(key_id)}:{key_id}:{nonce}"


class InMemoryNonceStore:
    """A thread-safe, expiring nonce store for one process.

    Holds at most `max_entries` live nonces; past that it refuses (StoreUnavailable) rather
    than forget a nonce early, which would let a replay through.
    """

    def __init__(self, *, clock: Clock | None = None, max_entries: int = 1_000_000) -> None:
        self._clock = clock or SystemClock()
        self._max = max_entries
        self._lock = threading.Lock()
        self._expiry: dict[str, dt.datetime] = {}
        self._heap: list[tuple[dt.datetime, str]] = []

    def check_and_store(self, key_id: str, nonce: str, ttl_seconds: int) -> bool:
        now = self._clock.now()
        name = nonce_key(key_id, nonce)
        with self._lock:
            self._purge(now)
            expires = self._expiry.get(name)
            if expires is not None and expires > now:
                return False
            if len(self._expiry) >= self._max:
                raise StoreUnavailable("nonce store is full")
            until = now + dt.timedelta(seconds=ttl_seconds)
            self._expiry[name] = until
            heapq.heappush(self._heap, (until, name))
            return True

    def _purge(self, now: dt.datetime) -> None:
        while self._heap and self._heap[0][0] <= now:
            until, name = heapq.heappop(self._heap)
            if self._expiry.get(name) == until:
                del self._expiry[name]

    def __len__(self) -> int:
        with self._lock:
            self._purge(self._clock.now())
            return len(self._expiry)


class RedisNonceStore:
    """Nonces in Redis, shared by every replica: one atomic `SET key 1 NX EX ttl`."""

    def __init__(self, client: Redis, *, prefix: str = "pkiforge:nonce:") -> None:
        self._call = RedisCalls(client)
        self._prefix = prefix

    def check_and_store(self, key_id: str, nonce: str, ttl_seconds: int) -> bool:
        from redis.exceptions import RedisError

        try:
            stored = self._call(
                "SET",
                self._prefix + nonce_key(key_id, nonce),
                b"1",
                "NX",
                "EX",
                max(1, ttl_seconds),
            )
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"nonce store unavailable: {type(exc).__name__}") from exc
        return bool(stored)
