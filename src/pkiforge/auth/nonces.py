"""Replay protection: the `NonceStore` port, an in-process store and a Redis store.

The verifier asks for a nonce through `claim_nonce`, which answers in two steps: the claim
is made before the signature is checked and settled after. A store with a `claim` method
(Redis) sends its `SET NX` at once, so the round trip overlaps the signature check; for any
other store the claim does nothing until it is settled, so the nonce is stored only for a
request whose signature verified. A claim on a request that is refused after all is
`abandon`ed: a nonce it stored is deleted again, so that forged requests leave nothing
behind. A request is accepted only when its own claim stored the nonce, so a request is
never accepted twice, whatever the order in which claims and deletions land.
"""

from __future__ import annotations

import datetime as dt
import heapq
import threading
from typing import TYPE_CHECKING, Protocol

from pkiforge.clock import Clock, SystemClock
from pkiforge.errors import StoreUnavailable
from pkiforge.redis_calls import PendingReply, RedisCalls

if TYPE_CHECKING:
    from redis import Redis

__all__ = [
    "InMemoryNonceStore",
    "NonceClaim",
    "NonceStore",
    "RedisNonceStore",
    "claim_nonce",
    "nonce_key",
]


class NonceStore(Protocol):
    """Remembers (key id, nonce) pairs for a while."""

    def check_and_store(self, key_id: str, nonce: str, ttl_seconds: int) -> bool:
        """Store the pair for `ttl_seconds`; False when it was already there.

        Raises:
            StoreUnavailable: the store cannot answer (callers must refuse the request).
        """
        ...


class NonceClaim(Protocol):
    """A nonce asked for and not yet settled; exactly one of its methods must be called."""

    def settle(self) -> bool:
        """True when this claim stored the nonce; False when it was already there.

        Raises:
            StoreUnavailable: the store cannot answer (callers must refuse the request).
        """
        ...

    def abandon(self) -> None:
        """The request is refused: finish the claim and delete the nonce if it stored it.

        Never raises: the request is refused anyway, and a nonce left behind only expires.
        """
        ...


class _DeferredClaim:
    """A claim on a store that answers only when asked: all the work happens in `settle`."""

    __slots__ = ("_key_id", "_nonce", "_store", "_ttl")

    def __init__(self, store: NonceStore, key_id: str, nonce: str, ttl_seconds: int) -> None:
        self._store = store
        self._key_id = key_id
        self._nonce = nonce
        self._ttl = ttl_seconds

    def settle(self) -> bool:
        return self._store.check_and_store(self._key_id, self._nonce, self._ttl)

    def abandon(self) -> None:
        pass


def claim_nonce(store: NonceStore, key_id: str, nonce: str, ttl_seconds: int) -> NonceClaim:
    """Start asking `store` for the pair: at once if the store can (see the module docstring)."""
    claim = getattr(store, "claim", None)
    if claim is not None:
        return claim(key_id, nonce, ttl_seconds)  # type: ignore[no-any-return]
    return _DeferredClaim(store, key_id, nonce, ttl_seconds)


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
        return self.claim(key_id, nonce, ttl_seconds).settle()

    def claim(self, key_id: str, nonce: str, ttl_seconds: int) -> NonceClaim:
        """Send the `SET NX` now; the claim reads Redis's answer when it is settled."""
        return _RedisClaim(self._call, self._prefix + nonce_key(key_id, nonce), ttl_seconds)


class _RedisClaim:
    """A `SET NX` sent to Redis; a failure to send is kept and raised by `settle`."""

    __slots__ = ("_call", "_error", "_name", "_pending")

    def __init__(self, call: RedisCalls, name: str, ttl_seconds: int) -> None:
        from redis.exceptions import RedisError

        self._call = call
        self._name = name
        self._pending: PendingReply | None = None
        self._error: Exception | None = None
        try:
            self._pending = call.send("SET", name, b"1", "NX", "EX", max(1, ttl_seconds))
        except (RedisError, OSError) as exc:
            self._error = exc

    def settle(self) -> bool:
        from redis.exceptions import RedisError

        pending, error = self._pending, self._error
        self._pending = self._error = None
        if pending is None:
            if error is None:
                raise RuntimeError("the claim was already settled")
            raise _unavailable(error) from error
        try:
            return bool(pending.reply())
        except (RedisError, OSError) as exc:
            raise _unavailable(exc) from exc

    def abandon(self) -> None:
        from redis.exceptions import RedisError

        try:
            if self.settle():
                self._call("DEL", self._name)
        except (StoreUnavailable, RedisError, OSError):
            pass  # the nonce, if it was stored, expires with its TTL


def _unavailable(exc: Exception) -> StoreUnavailable:
    return StoreUnavailable(f"nonce store unavailable: {type(exc).__name__}")
