"""What the ACME core needs from outside, declared by the core (the consumer owns it)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from cryptography import x509

from pkiforge.acme.models import (
    Account,
    Authorization,
    Challenge,
    ExternalKey,
    Order,
    Problem,
    Status,
)
from pkiforge.actor import Actor
from pkiforge.x509.names import SubjectName


class AcmeRepository(Protocol):
    """Accounts, orders, authorizations, challenges, binding keys and nonces, shared by every
    replica on one database. Every method is one transaction.

    Raises (every method): StoreUnavailable.
    """

    def add_nonce(self, nonce: str, expires_at: dt.datetime, now: dt.datetime) -> None:
        """Record a nonce; expired ones (before `now`) are purged now and then."""
        ...

    def take_nonce(self, nonce: str, now: dt.datetime) -> bool:
        """Delete the nonce if it exists and is unexpired; True if it did (single use)."""
        ...

    def add_external_key(self, key: ExternalKey, actor: Actor) -> None: ...

    def external_key(self, kid: str) -> ExternalKey | None: ...

    def add_account(self, account: Account) -> None:
        """Record the account and bind its external key (if any) to it, both or neither.

        Raises:
            Conflict: the key is already bound, or an account has this key thumbprint.
        """
        ...

    def account(self, account_id: str) -> Account | None: ...

    def account_by_thumbprint(self, thumbprint: str) -> Account | None: ...

    def deactivate_account(self, account_id: str) -> None: ...

    def change_key(self, account_id: str, thumbprint: str, jwk: dict[str, Any]) -> None:
        """Replace the account's key.

        Raises:
            Conflict: another account has this key.
        """
        ...

    def orders_of(self, account_id: str, limit: int) -> list[Order]:
        """The account's newest orders first."""
        ...

    def add_order(self, order: Order, authorizations: Sequence[Authorization]) -> None: ...

    def order(self, order_id: str) -> Order | None: ...

    def order_by_serial(self, serial: int) -> Order | None: ...

    def authorization(self, authz_id: str) -> Authorization | None: ...

    def authorizations(self, order_id: str) -> list[Authorization]: ...

    def challenge(self, challenge_id: str) -> Challenge | None: ...

    def start_challenge(
        self, challenge_id: str, now: dt.datetime, stale_before: dt.datetime
    ) -> bool:
        """pending -> processing (started now), or a processing one whose validation started
        before `stale_before` started again; False if neither (someone else runs it)."""
        ...

    def finish_challenge(
        self,
        challenge: Challenge,
        status: Status,
        validated_at: dt.datetime | None,
        error: Problem | None,
    ) -> None:
        """Set the challenge's outcome and its authorization's status with it."""
        ...

    def move_order(
        self,
        order_id: str,
        expected: Status,
        status: Status,
        *,
        serial: int | None = None,
        error: Problem | None = None,
    ) -> bool:
        """expected -> status (with the certificate's serial or an error); False if the order
        was no longer `expected`."""
        ...


class Fetch(Protocol):
    """Get `http://{name}/.well-known/acme-challenge/{token}` (RFC 8555 §8.3), guarded.

    Raises:
        AcmeError: connection (unreachable, refused by the address guard), incorrectResponse.
    """

    def __call__(self, name: str, token: str) -> bytes: ...


# Issue a certificate for `service_id` from the CSR through the API's pipeline (the same
# authorize step and policy): returns the serial. Raises PermissionDenied and the rest.
Issue = Callable[[str, str, x509.CertificateSigningRequest], int]
# Whether `service_id` may have these names (the same check issuance applies): raises
# PermissionDenied naming the first refused name.
CheckNames = Callable[[str, Sequence[SubjectName]], None]
# Run a callable off the request path (validation): returns at once.
Submit = Callable[[Callable[[], None]], None]


class AcmeEvents(Protocol):
    """What the ACME use-cases report as they go (metrics, by the edge that serves them)."""

    def order(self, status: Status) -> None:
        """An order reached `status`: pending (created), valid or invalid."""
        ...

    def challenge(self, type: str, error: str | None) -> None:
        """A validation ended: `error` is its ACME error type, None when it passed."""
        ...


class NoEvents:
    def order(self, status: Status) -> None:
        pass

    def challenge(self, type: str, error: str | None) -> None:
        pass
