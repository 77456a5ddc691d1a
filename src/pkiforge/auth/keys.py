"""Registered client keys, the `KeyResolver` port, and in-memory and caching resolvers."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from collections import OrderedDict
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from pkiforge.auth.algorithms import (
    PublicKey,
    SignatureAlgorithm,
    check_key_policy,
    fingerprint,
    key_fits_algorithm,
)
from pkiforge.clock import Clock, SystemClock
from pkiforge.errors import Conflict, IntegrityError, InvalidInput, NotFound

__all__ = [
    "CachedKeyResolver",
    "InMemoryKeyResolver",
    "KeyResolver",
    "KeyStatus",
    "RegisteredKey",
]


class KeyStatus(StrEnum):
    """Lifecycle of a registered key."""

    ACTIVE = "active"
    REVOKED = "revoked"


@dataclass(frozen=True, slots=True)
class RegisteredKey:
    """A client's public key as registered, with its owner and status.

    `fingerprint` is computed from `public_key` when left empty; a stored value that does
    not match the key raises `IntegrityError`.
    """

    key_id: str
    public_key: PublicKey
    algorithm: SignatureAlgorithm
    client_name: str
    created_at: dt.datetime
    email: str | None = None
    organization: str | None = None
    status: KeyStatus = KeyStatus.ACTIVE
    revoked_at: dt.datetime | None = None
    revocation_reason: str | None = None
    fingerprint: str = ""

    def __post_init__(self) -> None:
        check_key_policy(self.public_key)
        if not key_fits_algorithm(self.algorithm, self.public_key):
            raise InvalidInput(
                f"key type does not fit algorithm {self.algorithm}", field="algorithm"
            )
        actual = fingerprint(self.public_key)
        if not self.fingerprint:
            object.__setattr__(self, "fingerprint", actual)
        elif self.fingerprint != actual:
            raise IntegrityError(f"stored fingerprint does not match key {self.key_id}")

    @property
    def is_active(self) -> bool:
        """Whether the key may authenticate requests."""
        return self.status is KeyStatus.ACTIVE

    def revoked(self, at: dt.datetime, reason: str | None = None) -> RegisteredKey:
        """A copy of this key marked revoked.

        Raises:
            Conflict: the key is already revoked.
        """
        if not self.is_active:
            raise Conflict(f"key {self.key_id} is already revoked")
        return dataclasses.replace(
            self, status=KeyStatus.REVOKED, revoked_at=at, revocation_reason=reason
        )


class KeyResolver(Protocol):
    """Looks registered keys up by id; raises `StoreUnavailable` when it cannot answer."""

    def get(self, key_id: str) -> RegisteredKey | None: ...


class InMemoryKeyResolver:
    """A thread-safe, process-local key registry; for tests and single-process apps."""

    def __init__(self, keys: list[RegisteredKey] | None = None) -> None:
        self._lock = threading.Lock()
        self._keys: dict[str, RegisteredKey] = {}
        for key in keys or []:
            self.add(key)

    def get(self, key_id: str) -> RegisteredKey | None:
        with self._lock:
            return self._keys.get(key_id)

    def add(self, key: RegisteredKey) -> None:
        """Register a key.

        Raises:
            Conflict: the key id is taken.
        """
        with self._lock:
            if key.key_id in self._keys:
                raise Conflict(f"key id {key.key_id} is already registered")
            self._keys[key.key_id] = key

    def revoke(self, key_id: str, at: dt.datetime, reason: str | None = None) -> RegisteredKey:
        """Mark a key revoked and return it.

        Raises:
            NotFound: no such key.
            Conflict: already revoked.
        """
        with self._lock:
            key = self._keys.get(key_id)
            if key is None:
                raise NotFound(f"no key {key_id}")
            self._keys[key_id] = key.revoked(at, reason)
            return self._keys[key_id]


class CachedKeyResolver:
    """A TTL cache in front of a slower resolver (for example SQL), shared by threads.

    A revocation made on another replica is seen once the entry expires (`ttl_seconds`,
    default 5 s); the replica that revoked calls `invalidate(key_id)` to see it at once.
    Unknown ids are cached too, so a flood of random ids does not reach the store; the
    cache holds at most `max_entries` ids, dropping the oldest first.
    """

    def __init__(
        self,
        inner: KeyResolver,
        *,
        clock: Clock | None = None,
        ttl_seconds: float = 5.0,
        max_entries: int = 10_000,
    ) -> None:
        self._inner = inner
        self._clock = clock or SystemClock()
        self._ttl = dt.timedelta(seconds=ttl_seconds)
        self._max = max_entries
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[dt.datetime, RegisteredKey | None]] = OrderedDict()

    def get(self, key_id: str) -> RegisteredKey | None:
        now = self._clock.now()
        with self._lock:
            hit = self._entries.get(key_id)
            if hit is not None and now - hit[0] < self._ttl:
                return hit[1]
        key = self._inner.get(key_id)  # StoreUnavailable propagates: fail closed
        with self._lock:
            self._entries[key_id] = (now, key)
            self._entries.move_to_end(key_id)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)
        return key

    def invalidate(self, key_id: str) -> None:
        """Forget one key so that the next lookup reads the store."""
        with self._lock:
            self._entries.pop(key_id, None)

    def clear(self) -> None:
        """Forget every cached key."""
        with self._lock:
            self._entries.clear()
