"""Key-registry use-cases: register, look up, list, revoke; storage behind a `KeyRepository`.

Registration applies the key policy (RSA 2048-8192, P-256, P-384, Ed25519), picks the key's
default algorithm unless a fitting one is asked for, gives the key a random URL-safe id and
refuses a public key that is already registered (same SHA-256 SPKI fingerprint). Revocation
is final; `on_revoke` lets the caller drop the key from its caches at once.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

from pkiforge.actor import Actor
from pkiforge.auth.algorithms import (
    SignatureAlgorithm,
    algorithm_for_key,
    fingerprint,
    load_public_key,
    new_key_id,
)
from pkiforge.auth.keys import KeyStatus, RegisteredKey
from pkiforge.auth.usage import AuthEvent, DailyUsage
from pkiforge.clock import Clock
from pkiforge.errors import Conflict, InvalidInput, NotFound

__all__ = ["KeyQuery", "KeyRegistration", "KeyRegistry", "KeyRepository"]

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_MAX_TEXT = 255
MAX_PAGE = 500
MAX_OFFSET = 1_000_000_000  # SQL engines take 64-bit offsets; larger ones would overflow
MAX_USAGE_DAYS = 366


@dataclass(frozen=True, slots=True)
class KeyRegistration:
    """What a client submits to register a public key."""

    public_key_pem: bytes
    client_name: str
    email: str | None = None
    organization: str | None = None
    algorithm: str | None = None  # default: the key's (rsa-pss-sha512 for RSA)


@dataclass(frozen=True, slots=True)
class KeyQuery:
    """Filters and a page for listing keys (newest first)."""

    status: KeyStatus | None = None
    client_name: str | None = None
    limit: int = 100
    offset: int = 0


class KeyRepository(Protocol):
    """Storage of registered keys, their usage and events; raises `StoreUnavailable`."""

    def add(self, key: RegisteredKey, actor: Actor) -> None:
        """Store a new key (and audit it). Raises Conflict: id or fingerprint taken."""
        ...

    def get(self, key_id: str) -> RegisteredKey | None: ...

    def by_fingerprint(self, fingerprint: str) -> RegisteredKey | None: ...

    def search(self, query: KeyQuery) -> list[RegisteredKey]: ...

    def save_revocation(self, key: RegisteredKey, actor: Actor) -> None:
        """Mark `key` revoked if it is still active. Raises Conflict: it was not."""
        ...

    def usage(self, key_id: str, since: dt.date) -> list[DailyUsage]: ...

    def events(self, key_id: str | None, limit: int) -> list[AuthEvent]: ...


def _text(value: str | None, field: str, *, required: bool = False) -> str | None:
    if value is None or not value.strip():
        if required:
            raise InvalidInput(f"{field} is required", field=field)
        return None
    value = value.strip()
    if len(value) > _MAX_TEXT:
        raise InvalidInput(f"{field} is longer than {_MAX_TEXT} characters", field=field)
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise InvalidInput(f"{field} contains control characters", field=field)
    return value


def _algorithm(name: str | None) -> SignatureAlgorithm | None:
    if name is None:
        return None
    try:
        return SignatureAlgorithm(name)
    except ValueError:
        choices = ", ".join(a.value for a in SignatureAlgorithm)
        raise InvalidInput(
            f"unknown algorithm {name!r}; use one of {choices}", field="algorithm"
        ) from None


class KeyRegistry:
    """The key-registry use-cases over a `KeyRepository`."""

    def __init__(
        self,
        repo: KeyRepository,
        clock: Clock,
        *,
        on_revoke: Callable[[str], None] | None = None,
        new_id: Callable[[], str] = new_key_id,
    ) -> None:
        self.repo = repo
        self.clock = clock
        self.on_revoke = on_revoke
        self._new_id = new_id

    def register(self, registration: KeyRegistration, actor: Actor) -> RegisteredKey:
        """Check and store a client's public key.

        Raises:
            InvalidInput, WeakKey: bad PEM, key outside the policy, bad name/e-mail/algorithm.
            Conflict: the same public key is already registered.
        """
        client_name = _text(registration.client_name, "client_name", required=True)
        email = _text(registration.email, "email")
        if email is not None and not _EMAIL.match(email):
            raise InvalidInput("email is not an e-mail address", field="email")
        organization = _text(registration.organization, "organization")
        public_key = load_public_key(registration.public_key_pem)
        algorithm = _algorithm(registration.algorithm) or algorithm_for_key(public_key)
        existing = self.repo.by_fingerprint(fingerprint(public_key))
        if existing is not None:
            raise Conflict(
                f"this public key is already registered as {existing.key_id}",
                field="public_key",
                key_id=existing.key_id,
            )
        key = RegisteredKey(
            key_id=self._new_id(),
            public_key=public_key,
            algorithm=algorithm,
            client_name=client_name or "",
            created_at=self.clock.now(),
            email=email,
            organization=organization,
        )
        self.repo.add(key, actor)
        return key

    def get(self, key_id: str) -> RegisteredKey:
        """One key.

        Raises:
            NotFound: no such key.
        """
        key = self.repo.get(key_id)
        if key is None:
            raise NotFound(f"no key {key_id!r}", field="key_id")
        return key

    def search(self, query: KeyQuery) -> list[RegisteredKey]:
        """Keys matching the filters, newest first.

        Raises:
            InvalidInput: a page outside 1..500 or a negative offset.
        """
        _check_page(query)
        return self.repo.search(query)

    def page(self, query: KeyQuery) -> tuple[list[RegisteredKey], bool]:
        """`search`, and whether another page follows (one more key is read to tell).

        Raises:
            InvalidInput: as `search`.
        """
        _check_page(query)
        keys = self.repo.search(replace(query, limit=query.limit + 1))
        return keys[: query.limit], len(keys) > query.limit

    def revoke(self, key_id: str, reason: str | None, actor: Actor) -> RegisteredKey:
        """Revoke a key for good and drop it from caches.

        Raises:
            NotFound: no such key.
            Conflict: already revoked.
            InvalidInput: reason too long.
        """
        why = _text(reason, "reason") or "unspecified"
        revoked = self.get(key_id).revoked(self.clock.now(), why)
        self.repo.save_revocation(revoked, actor)
        if self.on_revoke is not None:
            self.on_revoke(key_id)
        return revoked

    def usage(self, key_id: str, days: int = 30) -> list[DailyUsage]:
        """Daily counts of the last `days` days (oldest first).

        Raises:
            NotFound: no such key. InvalidInput: days outside 1..366.
        """
        if not 1 <= days <= MAX_USAGE_DAYS:
            raise InvalidInput(f"days must be 1 to {MAX_USAGE_DAYS}", field="days")
        self.get(key_id)
        since = self.clock.now().astimezone(dt.UTC).date() - dt.timedelta(days=days - 1)
        return self.repo.usage(key_id, since)

    def events(self, key_id: str | None = None, limit: int = 100) -> list[AuthEvent]:
        """Recent authentication events (newest first), of one key or all.

        Raises:
            InvalidInput: limit outside 1..500.
        """
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"limit must be 1 to {MAX_PAGE}", field="limit")
        return self.repo.events(key_id, limit)


def _check_page(query: KeyQuery) -> None:
    if not 1 <= query.limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be 1 to {MAX_PAGE}", field="limit")
    if not 0 <= query.offset <= MAX_OFFSET:
        raise InvalidInput(f"offset must be 0 to {MAX_OFFSET}", field="offset")
