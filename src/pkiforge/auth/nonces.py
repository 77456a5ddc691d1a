"""Replay protection: the `NonceStore` port and an in-process store (Redis: redis_nonces.py).

The verifier asks for a nonce through `claim_nonce`, which answers in two steps: the claim
is made before the signature is checked and settled after. A store with a `claim` method
(Redis) sends its write at once, so the round trip overlaps the signature check; for any
other store the claim does nothing until it is settled, so the nonce is stored only for a
request whose signature verified. A claim on a request that is refused after all is
`abandon`ed: a nonce it stored is deleted again, so that forged requests leave nothing
behind. A request is accepted only when its own claim stored the nonce, so a request is
never accepted twice, whatever the order in which claims and deletions land.

A store can lose its memory (Redis restarted, failed over, flushed or evicting; a database
restored from a backup; the process restarted), so each keeps the time its memory began and
refuses (`memory_reset`) a signature created before it: that signature may have been
accepted while the lost memory held its nonce. The shared stores notice a loss in the same
atomic step as each nonce write and begin a new memory then; clients sign again and are
accepted.
"""

from __future__ import annotations

import datetime as dt
import heapq
import threading
from typing import Protocol

from pkiforge.clock import Clock, SystemClock
from pkiforge.errors import AuthenticationFailed, StoreUnavailable

__all__ = [
    "MEMORY_RESET",
    "InMemoryNonceStore",
    "NonceClaim",
    "NonceStore",
    "claim_nonce",
    "memory_reset",
    "nonce_key",
    "process_start",
]

MEMORY_RESET = "nonce memory was reset; sign again"


def memory_reset() -> AuthenticationFailed:
    """The refusal of a signature created before the nonce store's memory began."""
    return AuthenticationFailed(MEMORY_RESET, reason=MEMORY_RESET)


class NonceStore(Protocol):
    """Remembers (key id, nonce) pairs for a while."""

    def check_and_store(
        self, key_id: str, nonce: str, ttl_seconds: int, *, created: dt.datetime
    ) -> bool:
        """Store the pair for `ttl_seconds`; False when it was already there.

        `created` is when the signature says it was made; a store whose memory began after
        it cannot know whether the pair was seen, and refuses.

        Raises:
            AuthenticationFailed: `created` is before the store's memory began (`memory_reset`).
            StoreUnavailable: the store cannot answer (callers must refuse the request).
        """
        ...


class NonceClaim(Protocol):
    """A nonce asked for and not yet settled; exactly one of its methods must be called."""

    def settle(self) -> bool:
        """True when this claim stored the nonce; False when it was already there.

        Raises:
            AuthenticationFailed: signed before the store's memory began (`memory_reset`).
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

    __slots__ = ("_created", "_key_id", "_nonce", "_store", "_ttl")

    def __init__(
        self, store: NonceStore, key_id: str, nonce: str, ttl_seconds: int, created: dt.datetime
    ) -> None:
        self._store = store
        self._key_id = key_id
        self._nonce = nonce
        self._ttl = ttl_seconds
        self._created = created

    def settle(self) -> bool:
        return self._store.check_and_store(
            self._key_id, self._nonce, self._ttl, created=self._created
        )

    def abandon(self) -> None:
        pass


def claim_nonce(
    store: NonceStore, key_id: str, nonce: str, ttl_seconds: int, created: dt.datetime
) -> NonceClaim:
    """Start asking `store` for the pair: at once if the store can (see the module docstring)."""
    claim = getattr(store, "claim", None)
    if claim is not None:
        return claim(key_id, nonce, ttl_seconds, created)  # type: ignore[no-any-return]
    return _DeferredClaim(store, key_id, nonce, ttl_seconds, created)


def process_start(clock: Clock) -> dt.datetime:
    """The start of a memory that begins with this process: now, down to the whole second.

    `created` has whole seconds, so with the fraction kept a client that signs in the second
    the process started would be refused. Letting that second through costs a replay only if
    the process before this one accepted a request in the same second, and a restart
    (shutdown, interpreter start, imports) seldom fits in one.
    """
    return clock.now().replace(microsecond=0)


def nonce_key(key_id: str, nonce: str) -> str:
    """An unambiguous store key for the pair (the key id's length keeps ':' from colliding)."""
    return f"{len(key_id)}:{key_id}:{nonce}"


class InMemoryNonceStore:
    """A thread-safe, expiring nonce store for one process.

    Holds at most `max_entries` live nonces; past that it refuses (StoreUnavailable) rather
    than forget a nonce early, which would let a replay through. Its memory begins when it is
    made and ends with the process, so it refuses signatures created before it was made (a
    request signed before a restart may have been accepted by the process before), counting
    from the start of that second (`process_start`).
    """

    def __init__(self, *, clock: Clock | None = None, max_entries: int = 1_000_000) -> None:
        self._clock = clock or SystemClock()
        self._max = max_entries
        self._lock = threading.Lock()
        self._expiry: dict[str, dt.datetime] = {}
        self._heap: list[tuple[dt.datetime, str]] = []
        self._start = process_start(self._clock)

    def check_and_store(
        self, key_id: str, nonce: str, ttl_seconds: int, *, created: dt.datetime
    ) -> bool:
        if created < self._start:
            raise memory_reset()
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
