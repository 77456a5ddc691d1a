"""The interfaces the core needs from storage and key custody; adapters implement them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes

from pkiforge.ca.events import Delivery, DeliveryStatus, Event, OutboxStats
from pkiforge.ca.models import (
    AuditEntry,
    AuditHead,
    CARecord,
    CAStatus,
    CertificateQuery,
    CertificateRecord,
    CertStatus,
    CRLRecord,
    CRLState,
    ExpiringCertificate,
    Revocation,
    Total,
)
from pkiforge.ca.ocsp_records import CachedAnswer, ResponderRecord
from pkiforge.ca.registry_models import EnrollmentToken, ServiceRecord, ServiceWebhook


class CARepository(Protocol):
    def add(self, ca: CARecord) -> None: ...
    def update(self, ca: CARecord) -> None: ...
    def get(self, name: str, *, for_update: bool = False) -> CARecord | None: ...
    def list(self) -> list[CARecord]: ...
    def states(self) -> tuple[tuple[str, CAStatus], ...]:
        """Each CA's name and status, by name: what tells a cached view it is stale."""


class CertificateRepository(Protocol):
    def add(self, record: CertificateRecord) -> None:
        """Insert a record; raises Conflict if the serial is already known."""

    def update(self, record: CertificateRecord) -> None: ...
    def activate(self, record: CertificateRecord) -> bool:
        """Store `record` over its pending row; False if there is no pending row."""

    def get(self, serial: int) -> CertificateRecord | None: ...
    def standing(self, serial: int) -> tuple[CertStatus, str | None] | None:
        """Status and SHA-256 fingerprint only: the per-request identity check."""

    def search(self, query: CertificateQuery) -> list[CertificateRecord]: ...
    def count(self, query: CertificateQuery) -> int: ...
    def total(self, query: CertificateQuery) -> Total:
        """How many match: exact up to a bound, an estimate above it (no full count)."""

    def revoke(self, serial: int, revocation: Revocation) -> None:
        """Record the revocation and, in the same transaction, mark its issuer's CRL stale
        from `revocation.revoked_at` (unless an earlier revocation already did) and drop the
        certificate's cached OCSP answers (no `good` outlives the revocation's commit)."""

    def revoked(self, issuer: str) -> list[CertificateRecord]: ...
    def crl_entries(
        self,
        issuer: str,
        *,
        unexpired_at: dt.datetime,
        leave_out: int,
        since: dt.datetime | None = None,
    ) -> Iterator[tuple[int, Revocation]]:
        """Serial and revocation of each revoked certificate of `issuer` that is unexpired
        at `unexpired_at` (and revoked at or after `since`), except serial `leave_out`, by
        revocation time; read in one streaming query (consume it inside the transaction)."""


class MaintenanceRepository(Protocol):
    """What the scheduled jobs ask of the certificates (ca/expiry_scan.py, ca/tidy.py)."""

    def expiring(self, until: dt.datetime, now: dt.datetime) -> list[ExpiringCertificate]:
        """Active, unarchived certificates with `now` < notAfter <= `until`, soonest first
        (not OCSP responders: the ocsp-refresh job replaces them)."""

    def expired_on_crl(self, issuer: str, after: dt.datetime, until: dt.datetime) -> int:
        """Revoked certificates of `issuer` whose notAfter is in (`after`, `until`]: entries a
        CRL signed at `after` lists that one signed at `until` leaves out."""

    def archive(
        self,
        expired_before: dt.datetime,
        at: dt.datetime,
        limit: int,
        expired_from: dt.datetime | None = None,
    ) -> tuple[int, dt.datetime | None]:
        """Mark the first `limit` unarchived certificates with `expired_from` <= notAfter <=
        `expired_before`, soonest first, archived at `at`; return how many, and the notAfter
        of the last (the next batch starts there: it need not pass the archived ones again)."""


class CRLRepository(Protocol):
    def add(self, crl: CRLRecord) -> None:
        """Store a CRL built in this transaction while it holds its issuer's row
        (`cas.get(..., for_update=True)`): it lists every revocation recorded so far, so the
        issuer's stale mark is cleared."""

    def latest(self, issuer: str) -> CRLRecord | None: ...
    def add_delta(self, crl: CRLRecord) -> None:
        """Store a delta CRL, signed while holding its issuer's row like `add`."""

    def latest_delta(self, issuer: str) -> CRLRecord | None: ...
    def get(self, issuer: str, number: int) -> CRLRecord | None: ...
    def state(self, issuer: str) -> CRLState | None:
        """The stale mark and the newest CRL's number and dates, in one indexed read; None
        for an unknown issuer."""


class OCSPRepository(Protocol):
    """Delegated responders and signed answers, shared by every replica (ca/ocsp.py)."""

    def responder(self, issuer: str, valid_at: dt.datetime) -> ResponderRecord | None:
        """The newest responder of `issuer` whose certificate is valid at `valid_at`."""

    def add_responder(self, record: ResponderRecord) -> None: ...
    def answer(self, issuer: str, serial: int, algorithm: str) -> CachedAnswer | None: ...
    def keep(self, answer: CachedAnswer) -> bool:
        """Store (or replace) `answer` if the certificate still has the status it was signed
        for; False (nothing stored) when a revocation came in between. Holds the
        certificate's row, so a revocation committing meanwhile waits or is seen."""

    def due(self, before: dt.datetime, limit: int) -> list[tuple[str, int, str]]:
        """Issuer, serial and algorithm of cached answers whose nextUpdate is before
        `before`, soonest first."""


class AuditRepository(Protocol):
    def head(self) -> AuditHead | None:
        """The newest entry's seq and hash; holds the chain so no other writer appends until
        commit (every audited action reads it: the whole entry is not needed)."""

    def add(self, entry: AuditEntry) -> None: ...
    def iterate(self) -> Iterator[AuditEntry]: ...
    def recent(
        self, limit: int, action: str | None = None, subject: str | None = None
    ) -> list[AuditEntry]: ...


class ServiceRepository(Protocol):
    def add(self, service: ServiceRecord) -> None:
        """Insert; raises Conflict if the service id is taken."""

    def update(self, service: ServiceRecord) -> None: ...
    def get(self, service_id: str) -> ServiceRecord | None: ...
    def list(self, service_type: str | None = None) -> list[ServiceRecord]: ...
    def owners_of(self, keys: Sequence[str], *, claiming: bool = False) -> dict[str, str]:
        """The registered names (or patterns) filed under these index keys
        (`ca/name_index.py`), and the service each belongs to: exact names first, then
        wildcards, so that the most specific registration is the one found first.

        `claiming`: this transaction will claim names; other claimers wait until it ends, so
        two replicas can never both see a name as free and both take it.
        """

    def touch(self, service_id: str, at: dt.datetime) -> bool:
        """Set `last_seen`; False when the service is not registered."""


class TokenRepository(Protocol):
    def add(self, token: EnrollmentToken) -> None: ...
    def get(self, token_id: str) -> EnrollmentToken | None: ...
    def list(self, service_id: str | None = None) -> list[EnrollmentToken]: ...
    def consume(self, token_id: str, secret_hash: str, at: dt.datetime, by: str) -> bool:
        """Mark used in one conditional UPDATE; True for the one caller that wins."""

    def release(self, token_id: str) -> None:
        """Undo `consume` when the request it was spent on was refused."""

    def set_certificate(self, token_id: str, serial: str) -> None: ...


class ServiceWebhookRepository(Protocol):
    def get(self, service_id: str) -> ServiceWebhook | None: ...
    def put(self, hook: ServiceWebhook) -> None:
        """Insert or replace the service's webhook."""

    def delete(self, service_id: str) -> bool:
        """Remove it; False when there was none."""


class OutboxRepository(Protocol):
    def add(self, event: Event, endpoints: Sequence[str], at: dt.datetime) -> None:
        """Record the event and one pending delivery to each endpoint, due at `at`."""

    def has(self, event_id: str) -> bool:
        """Whether an event with this id was recorded (events with fixed ids are made once)."""

    def claim_due(self, now: dt.datetime, until: dt.datetime, limit: int) -> list[Delivery]:
        """Pending deliveries due by `now` that nobody holds, each now held until `until` by
        this caller alone (a conditional update per row: two replicas never both get one)."""

    def delivered(self, delivery_id: int, at: dt.datetime, attempts: int) -> None: ...
    def attempt_failed(
        self, delivery_id: int, attempts: int, error: str, retry_at: dt.datetime | None
    ) -> None:
        """Record a failed attempt: pending again from `retry_at`, or failed for good if None."""

    def list(self, status: DeliveryStatus | None = None, limit: int = 100) -> list[Delivery]: ...
    def stats(self) -> OutboxStats:
        """Deliveries per status, and the event time of the oldest pending one."""

    def retry(self, delivery_ids: Sequence[int] | None, at: dt.datetime) -> int:
        """Make failed deliveries (these, or all if None) pending and due at `at`, attempts
        reset; returns how many."""

    def statuses(self, delivery_ids: Sequence[int]) -> dict[int, DeliveryStatus]:
        """The status of each of these deliveries that exists."""

    def hasten(self, delivery_ids: Sequence[int], at: dt.datetime) -> int:
        """Make these pending deliveries due at `at` if they were due later (a hold stays);
        returns how many were pending."""


class Transaction(Protocol):
    """One unit of work: everything commits together or not at all."""

    @property
    def cas(self) -> CARepository: ...
    @property
    def certificates(self) -> CertificateRepository: ...
    @property
    def crls(self) -> CRLRepository: ...
    @property
    def ocsp(self) -> OCSPRepository: ...
    @property
    def audit(self) -> AuditRepository: ...
    @property
    def services(self) -> ServiceRepository: ...
    @property
    def tokens(self) -> TokenRepository: ...
    @property
    def maintenance(self) -> MaintenanceRepository: ...
    @property
    def outbox(self) -> OutboxRepository: ...
    @property
    def service_webhooks(self) -> ServiceWebhookRepository: ...


class Store(Protocol):
    def transaction(
        self, *, readonly: bool = False, durable: bool = True
    ) -> AbstractContextManager[Transaction]:
        """Commit on normal exit, roll back on exception; `readonly` promises no writes.

        `durable=False` may return before the commit is on disk: for a write that nobody acts
        on until a later durable commit of the same process, whose sync covers it too (as
        PostgreSQL's `synchronous_commit = off` for one transaction).
        """


class RateLimiter(Protocol):
    """Counts certificate issuance per service; shared by replicas when backed by Redis."""

    def hit(self, key: str) -> None:
        """Count one issuance for `key`.

        Raises:
            RateLimited: over the limit (with `retry_after`). StoreUnavailable: cannot count.
        """


class IssuanceEvents(Protocol):
    """Observers of the lifecycle (metrics); must not raise."""

    def issued(self, record: CertificateRecord, *, renewed: bool) -> None: ...
    def revoked(self, record: CertificateRecord) -> None: ...
    def failed(self, issuer: str, profile: str) -> None: ...


class KeyStore(Protocol):
    """Custody of CA private keys; the passphrase stays inside the implementation."""

    def save(
        self, name: str, key: CertificateIssuerPrivateKeyTypes, location: str | None = None
    ) -> str:
        """Store a new key; return the reference to record with the CA."""

    def load(self, key_ref: str) -> CertificateIssuerPrivateKeyTypes:
        """Raises BadPassphrase, NotFound."""

    def seal(self, key: CertificateIssuerPrivateKeyTypes) -> bytes:
        """The key encrypted as CA keys are, for a store that holds it (OCSP responders)."""

    def unseal(self, data: bytes) -> CertificateIssuerPrivateKeyTypes:
        """Raises BadPassphrase, InvalidInput."""

    def set_aside(self, name: str, location: str | None = None) -> str | None:
        """Move a key that `save` left before an interruption out of the way, never deleting
        it; return where it went (None when there was none)."""
