"""Domain values of the CA core: plain frozen dataclasses, no ORM, no HTTP."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import Any

from cryptography import x509

# re-exported for ca-internal use; everything outside ca/ imports them from pkiforge.actor
from pkiforge.actor import OPERATOR as OPERATOR
from pkiforge.actor import SYSTEM as SYSTEM
from pkiforge.actor import Actor as Actor


class CAKind(StrEnum):
    ROOT = "root"
    INTERMEDIATE = "intermediate"


class CAStatus(StrEnum):
    ACTIVE = "active"
    PENDING = "pending"  # key made, waiting for the (offline) root to sign its CSR
    RETIRED = "retired"  # rotated: its successor issues; it still answers for what it issued
    REVOKED = "revoked"  # its certificate is on the root's CRL; it signs nothing any more


# the profiles under which the hierarchy use-cases record CA certificates (ca/hierarchy.py)
CA_PROFILES = frozenset({"root-ca", "intermediate-ca"})
# delegated OCSP responders (ca/ocsp_responders.py): short-lived, replaced by a job, never
# anyone's to renew
RESPONDER_PROFILE = "ocsp-responder"


class CertStatus(StrEnum):
    PENDING = "pending"  # serial reserved, not (yet) signed: record-before-sign
    ACTIVE = "active"
    REVOKED = "revoked"
    FAILED = "failed"  # signing failed after the serial was reserved; nothing was issued
    EXPIRED = "expired"  # derived for display: active past notAfter, never stored


@dataclass(frozen=True)
class CARecord:
    """A CA of the hierarchy; `key_ref` is None when its key is held elsewhere (offline root)."""

    name: str
    kind: CAKind
    status: CAStatus
    parent: str | None
    certificate: x509.Certificate | None
    key_ref: str | None
    created_at: dt.datetime
    crl_number: int = 0

    @property
    def in_service(self) -> bool:
        """Its certificates are trusted and it signs their CRLs and OCSP answers: active, or
        retired by a rotation (it issues nothing new, but what it issued stays valid)."""
        return self.certificate is not None and self.status in (CAStatus.ACTIVE, CAStatus.RETIRED)


@dataclass(frozen=True)
class Revocation:
    """Why and when a certificate was revoked (RFC 5280 §5.3.1, §5.3.2)."""

    reason: x509.ReasonFlags
    revoked_at: dt.datetime
    invalidity_date: dt.datetime | None = None
    revoked_by: str = ""


@dataclass(frozen=True)
class CertificateRecord:
    """What the store knows of one serial, from reservation to revocation."""

    serial: int
    issuer: str
    profile: str
    common_name: str
    names: tuple[str, ...]
    status: CertStatus
    created_at: dt.datetime
    service_id: str | None = None
    not_before: dt.datetime | None = None
    not_after: dt.datetime | None = None
    fingerprint: str | None = None
    certificate: x509.Certificate | None = None
    server_generated_key: bool = False
    renewed_from: int | None = None
    revocation: Revocation | None = None
    # the requester's JSON object (see ca/metadata.py); not hashed: a dict is not hashable
    metadata: Mapping[str, Any] = field(default_factory=dict, hash=False)

    @property
    def serial_hex(self) -> str:
        return format_serial(self.serial)

    @property
    def is_ca(self) -> bool:
        """A root or intermediate certificate: by the profile it was recorded under, or by its
        basicConstraints, so that a CA certificate recorded any other way counts too."""
        if self.profile in CA_PROFILES:
            return True
        if self.certificate is None:
            return False
        try:
            bc = self.certificate.extensions.get_extension_for_class(x509.BasicConstraints)
        except x509.ExtensionNotFound:
            return False
        return bc.value.ca

    def state(self, now: dt.datetime) -> CertStatus:
        """The status as of `now`: an active certificate past notAfter is expired."""
        if (
            self.status is CertStatus.ACTIVE
            and self.not_after is not None
            and self.not_after <= now
        ):
            return CertStatus.EXPIRED
        return self.status


# keyset pagination of the inventory (ca/paging.py)
class Order(Enum):
    """The order of a listing; each is served by an index (migration 0016)."""

    NEWEST = "n"  # created_at descending, then serial descending
    EXPIRING = "e"  # not_after ascending, then serial ascending: what expires next first
    EXPIRED = "x"  # not_after descending, then serial descending: most recently expired first


@dataclass(frozen=True)
class PagePosition:
    """Where the next page starts: after the row with this sort time and serial."""

    order: Order
    at: dt.datetime
    serial: int

    @classmethod
    def after(cls, record: CertificateRecord, order: Order) -> PagePosition:
        at = record.created_at if order is Order.NEWEST else record.not_after
        if at is None:  # an expiry order lists signed certificates only
            raise ValueError(f"certificate {record.serial_hex} has no not_after")
        return cls(order, at, record.serial)


@dataclass(frozen=True)
class Total:
    """How many rows match: exact up to a bound, an estimate (`exact` False) above it, or,
    where no estimate is at hand, the bound itself (`at_least`)."""

    count: int
    exact: bool
    at_least: bool = False

    def words(self) -> str:
        """`1,234`, `about 1,234` or `over 1,234`."""
        about = "" if self.exact else "over " if self.at_least else "about "
        return f"{about}{self.count:,}"


@dataclass(frozen=True)
class CertificateQuery:
    """Filters for the inventory; None means any."""

    issuer: str | None = None
    status: CertStatus | None = None
    service_id: str | None = None
    expiring_before: dt.datetime | None = None
    now: dt.datetime | None = None  # needed for status=expired/active and expiring filters
    serial_prefix: str | None = None  # leading digits of `format_serial`
    # archived certificates (expired past the tidy job's retention) are left out unless asked
    include_archived: bool = False
    # leave out the certificates the CA makes for itself and replaces on its own (delegated
    # OCSP responders): what counts for expiry alerts is the fleet's
    exclude_internal: bool = False
    limit: int = 100
    after: PagePosition | None = None  # keyset pagination: rows after this one (ca/paging.py)


@dataclass(frozen=True)
class ExpiringCertificate:
    """An active certificate near its notAfter, as the expiry scan sees it."""

    serial: int
    issuer: str
    service_id: str | None
    common_name: str
    names: tuple[str, ...]
    not_after: dt.datetime
    renewed: bool  # a renewal of it has been issued: it is superseded, nothing is due

    @property
    def serial_hex(self) -> str:
        return format_serial(self.serial)


@dataclass(frozen=True)
class CRLRecord:
    """A CRL that was signed and published."""

    issuer: str
    number: int
    this_update: dt.datetime
    next_update: dt.datetime
    der: bytes
    # a delta CRL (RFC 5280 §5.2.4): the number of the full CRL it completes; None for a full
    # CRL. `last_revoked_at` is the issuer's newest revocation when it was signed
    base_number: int | None = None
    last_revoked_at: dt.datetime | None = None


@dataclass(frozen=True)
class CRLState:
    """How current an issuer's CRL is, without its DER: what serving reads to decide."""

    issuer: str
    # the first revocation its newest CRL does not list; None when that CRL lists them all
    stale_since: dt.datetime | None
    last_revoked_at: dt.datetime | None = None  # the issuer's newest revocation
    number: int = 0  # the newest CRL's number; 0 before the first
    this_update: dt.datetime | None = None
    next_update: dt.datetime | None = None


@dataclass(frozen=True)
class AuditEntry:
    """One link of the audit hash chain."""

    seq: int
    at: dt.datetime
    actor: str
    address: str | None
    action: str
    subject: str | None
    details: dict[str, Any] = field(default_factory=dict)
    prev_hash: str = ""
    hash: str = ""


@dataclass(frozen=True)
class AuditHead:
    """The newest link of the chain, as far as the next one needs it."""

    seq: int
    hash: str


def format_serial(serial: int) -> str:
    """Lower-case hex without separators, as stored and shown."""
    return format(serial, "x")


def parse_serial(text: str) -> int:
    """Parse a serial given in hex (`0x`, colons and spaces allowed).

    Raises:
        ValueError: not a hex serial.
    """
    value = text.strip().lower().removeprefix("0x").replace(":", "").replace(" ", "")
    if not value or len(value) > 40 or any(c not in "0123456789abcdef" for c in value):
        raise ValueError(f"invalid serial {text!r}: expected up to 40 hex digits")
    return int(value, 16)
