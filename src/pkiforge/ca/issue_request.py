"""What to issue, parsed once at the edge: a CSR, a key the requester holds, or a key type for
the CA to make, with typed names; and the request that renews a certificate."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

from pkiforge.ca.models import CertificateRecord, CertStatus
from pkiforge.errors import Conflict
from pkiforge.x509.keys import KeyType
from pkiforge.x509.names import SubjectName, parse_san


@dataclass(frozen=True)
class IssueRequest:
    """What to certify, parsed at the edge; None fields take the profile's or the CA's default.

    The key comes from exactly one of `csr` (checked by `issue`; its names join `names`),
    `public_key` (a key the requester holds, as a renewal keeps) or `key_type` (a key made
    here and returned once).
    """

    common_name: str | None = None
    names: Sequence[SubjectName] = ()  # parsed with wildcards allowed; the profile decides
    service_id: str | None = None
    profile: str | None = None  # None: an enrollment token's own, else DEFAULT_PROFILE
    issuer: str | None = None
    validity: dt.timedelta | None = None
    public_key: CertificatePublicKeyTypes | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)  # stored with the certificate
    csr: x509.CertificateSigningRequest | None = None
    key_type: KeyType | None = None
    # renewal: the serial renewed; the names are the old certificate's, a CSR may not add any
    renews: int | None = None
    # renewal: the lifetime of the renewed certificate, the default within the profile maximum
    default_validity: dt.timedelta | None = None


def parse_names(values: Sequence[str]) -> list[SubjectName]:
    """Parse `DNS:x`, `IP:x`, `URI:x` strings, wildcards allowed (the profile decides).

    Raises:
        InvalidName, PolicyViolation: a malformed name, or a wildcard out of place.
    """
    return [parse_san(v, allow_wildcard=True) for v in values]


def renewal_request(
    old: CertificateRecord,
    csr: x509.CertificateSigningRequest | None,
    validity: dt.timedelta | None,
    backdate: dt.timedelta,
) -> IssueRequest:
    """A successor of `old`: its names, profile, service, issuer and metadata, and its key
    unless a CSR brings a new one; by default its lifetime (less the backdate).

    Raises:
        Conflict: `old` is revoked, never issued, or a CA certificate.
    """
    check_renewable(old)
    assert old.certificate is not None
    lifetime = old.certificate.not_valid_after_utc - old.certificate.not_valid_before_utc
    return IssueRequest(
        old.common_name,
        parse_names(old.names),
        old.service_id,
        old.profile,
        old.issuer,
        validity,
        public_key=old.certificate.public_key() if csr is None else None,
        # the successor carries what the requester attached to the original
        metadata=old.metadata,
        csr=csr,
        renews=old.serial,
        default_validity=lifetime - backdate,
    )


def check_renewable(record: CertificateRecord) -> None:
    """Raises Conflict unless `record` is an issued leaf certificate that is not revoked."""
    if record.is_ca:
        raise Conflict(
            f"certificate {record.serial_hex} belongs to CA {record.common_name!r}: the leaf "
            "path does not renew CA certificates (see `pkiforge ca --help`)",
            field="serial",
        )
    if record.status is not CertStatus.ACTIVE or record.certificate is None:
        raise Conflict(
            f"certificate {record.serial_hex} is {record.status.value}; "
            "only an active certificate can be renewed",
            field="serial",
        )
