"""Wire shapes of /api/v1/certificates and how domain records render into them."""

from __future__ import annotations

import datetime as dt
import functools
from typing import Annotated, Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from pkiforge.api.schemas.common import CA_NAME_PATTERN, JSON_INTEGER, DateTime, Pem
from pkiforge.ca.crl import reason_name
from pkiforge.ca.metadata import MAX_METADATA_BYTES, MAX_METADATA_DEPTH, check_metadata
from pkiforge.ca.models import CertificateRecord
from pkiforge.ca.paging import MAX_CURSOR
from pkiforge.clock import utc_input
from pkiforge.errors import InvalidInput

Name = Annotated[str, StringConstraints(min_length=1, max_length=253)]
ValidityDays = Annotated[int, Field(ge=1, le=3650), JSON_INTEGER]
Uri = Annotated[str, StringConstraints(min_length=1, max_length=2048)]
METADATA_DESCRIPTION = (
    "Your own JSON object, stored with the certificate and returned with it (renewals keep "
    f"it). At most {MAX_METADATA_BYTES} bytes as compact UTF-8 JSON, objects and arrays "
    f"nested at most {MAX_METADATA_DEPTH} levels deep (this object is level 1), string keys; "
    "anything else is refused naming `metadata` and nothing is stored."
)


def _in_utc(value: dt.datetime, info: ValidationInfo) -> dt.datetime:
    # InvalidInput is a ValueError: pydantic turns it into a 422 naming the parameter
    return utc_input(value, info.field_name or "datetime")


# a time a client sends, as aware UTC; an instant outside the years 1-9999 in UTC is a 422
UtcDateTime = Annotated[DateTime, AfterValidator(_in_utc)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CertificateRequest(_Strict):
    """A CSR (PEM), or names and a key type for a key made by the server."""

    csr: Pem | None = Field(default=None, max_length=65536, description="PEM PKCS#10")
    service_id: str | None = Field(default=None, max_length=128, description="default: caller's")
    common_name: str | None = Field(default=None, max_length=253)
    san_dns: list[Name] = Field(default_factory=list, max_length=100)
    san_ip: list[Name] = Field(default_factory=list, max_length=100)
    san_uri: list[Uri] = Field(default_factory=list, max_length=20)
    profile: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="one of the server's profiles; default: a token's own, else service",
    )
    issuer: str | None = Field(default=None, max_length=63, pattern=CA_NAME_PATTERN)
    validity_days: ValidityDays | None = None
    key_type: str | None = Field(
        default=None, max_length=16, description="server-made key, only without a CSR"
    )
    metadata: dict[str, Any] = Field(default_factory=dict, description=METADATA_DESCRIPTION)

    @field_validator("metadata")
    @classmethod
    def _bounded(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            return check_metadata(value)
        except InvalidInput as exc:
            raise ValueError(str(exc)) from None  # a 422 naming `metadata`


class CertificateFilters(_Strict):
    """Query parameters of the certificate list."""

    service_id: str | None = Field(default=None, max_length=128)
    issuer: str | None = Field(default=None, max_length=63, pattern=CA_NAME_PATTERN)
    status: Literal["active", "expired", "revoked", "pending", "failed"] | None = None
    expiring_before: UtcDateTime | None = None
    limit: int = Field(default=100, ge=1, le=500)
    cursor: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_CURSOR,
        description="`next_cursor` of the previous page, with the same filters; "
        "any other value is a 400",
    )


class RenewRequest(_Strict):
    csr: Pem | None = Field(default=None, max_length=65536, description="PEM; default: same key")
    validity_days: ValidityDays | None = None


class RevokeRequest(_Strict):
    reason: str = Field(default="unspecified", max_length=64)
    invalidity_date: UtcDateTime | None = None


class RevocationOut(BaseModel):
    reason: str
    revoked_at: dt.datetime
    invalidity_date: dt.datetime | None


class CertificateOut(BaseModel):
    serial: str
    certificate_id: str
    service_id: str | None
    common_name: str
    names: list[str]
    issuer: str
    profile: str
    status: str
    not_before: dt.datetime | None
    not_after: dt.datetime | None
    fingerprint_sha256: str | None
    download_url: str
    certificate_pem: str | None
    chain_pem: str
    private_key_pem: str | None = None
    revocation: RevocationOut | None = None
    renewed_from: str | None = None
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="what was sent as `metadata` when requested"
    )


class CertificateList(BaseModel):
    items: list[CertificateOut]
    next_cursor: str | None = Field(
        description="pass as `cursor` for the next page (also in the `Link` header); "
        "null on the last page"
    )
    limit: int
    total: int = Field(description="how many match; an estimate when `total_exact` is false")
    total_exact: bool = Field(
        description="false above a bound: `total` is then PostgreSQL's planner estimate "
        "(SQLite: at least `total`)"
    )


def pem(certs: list[x509.Certificate]) -> str:
    return "".join(c.public_bytes(Encoding.PEM).decode("ascii") for c in certs)


@functools.lru_cache(maxsize=64)
def chain_pem(chain: tuple[x509.Certificate, ...]) -> str:
    """`pem` of a CA chain, rendered once: every issuance answers with its issuer's chain.

    Keyed by the certificates themselves (equal when their DER is), so a rotated CA is a new
    key; the cache holds a few chains at most.
    """
    return pem(list(chain))


def certificate_out(
    record: CertificateRecord,
    chain: list[x509.Certificate],
    now: dt.datetime,
    private_key_pem: str | None = None,
) -> CertificateOut:
    """Render one record; `chain` is its issuer up to and including the root."""
    rev = record.revocation
    return CertificateOut(
        serial=record.serial_hex,
        certificate_id=record.serial_hex,
        service_id=record.service_id,
        common_name=record.common_name,
        names=list(record.names),
        issuer=record.issuer,
        profile=record.profile,
        status=record.state(now).value,
        not_before=record.not_before,
        not_after=record.not_after,
        fingerprint_sha256=record.fingerprint,
        download_url=f"/api/v1/certificates/{record.serial_hex}/download",
        certificate_pem=pem([record.certificate]) if record.certificate else None,
        chain_pem=chain_pem(tuple(chain)),
        private_key_pem=private_key_pem,
        revocation=None
        if rev is None
        else RevocationOut(
            reason=reason_name(rev.reason),
            revoked_at=rev.revoked_at,
            invalidity_date=rev.invalidity_date,
        ),
        renewed_from=format(record.renewed_from, "x") if record.renewed_from is not None else None,
        metadata=dict(record.metadata),
    )
