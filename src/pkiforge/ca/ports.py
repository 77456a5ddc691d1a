"""The interfaces the core needs from storage and key custody; adapters implement them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes

from pkiforge.ca.models import (
    AuditEntry,
    CARecord,
    CertificateQuery,
    CertificateRecord,
    CRLRecord,
    Revocation,
)


class CARepository(Protocol):
    def add(self, ca: CARecord) -> None: ...
    def update(self, ca: CARecord) -> None: ...
    def get(self, name: str, *, for_update: bool = False) -> CARecord | None: ...
    def list(self) -> list[CARecord]: ...


class CertificateRepository(Protocol):
    def add(self, record: CertificateRecord) -> None:
        """Insert a record; raises Conflict if the serial is already known."""

    def update(self, record: CertificateRecord) -> None: ...
    def get(self, serial: int) -> CertificateRecord | None: ...
    def search(self, query: CertificateQuery) -> list[CertificateRecord]: ...
    def count(self, query: CertificateQuery) -> int: ...
    def revoke(self, serial: int, revocation: Revocation) -> None: ...
    def revoked(self, issuer: str) -> list[CertificateRecord]: ...


class CRLRepository(Protocol):
    def add(self, crl: CRLRecord) -> None: ...
    def latest(self, issuer: str) -> CRLRecord | None: ...


class AuditRepository(Protocol):
    def last(self) -> AuditEntry | None:
        """The newest entry; holds the chain so no other writer appends until commit."""

    def add(self, entry: AuditEntry) -> None: ...
    def iterate(self) -> Iterator[AuditEntry]: ...
    def recent(
        self, limit: int, action: str | None = None, subject: str | None = None
    ) -> list[AuditEntry]: ...


class Transaction(Protocol):
    """One unit of work: everything commits together or not at all."""

    @property
    def cas(self) -> CARepository: ...
    @property
    def certificates(self) -> CertificateRepository: ...
    @property
    def crls(self) -> CRLRepository: ...
    @property
    def audit(self) -> AuditRepository: ...


class Store(Protocol):
    def transaction(self) -> AbstractContextManager[Transaction]:
        """Commit on normal exit, roll back on exception."""


class KeyStore(Protocol):
    """Custody of CA private keys; the passphrase stays inside the implementation."""

    def save(
        self, name: str, key: CertificateIssuerPrivateKeyTypes, location: str | None = None
    ) -> str:
        """Store a new key; return the reference to record with the CA."""

    def load(self, key_ref: str) -> CertificateIssuerPrivateKeyTypes:
        """Raises BadPassphrase, NotFound."""
