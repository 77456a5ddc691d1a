"""Typed results of the API: frozen dataclasses parsed from its JSON; datetimes are aware UTC."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

__all__ = [
    "CAInfo",
    "Certificate",
    "CertificatePage",
    "PeerCertificate",
    "Revocation",
    "RevocationStatus",
    "Service",
    "WhoAmI",
]

Json = Mapping[str, Any]


def when(value: Any) -> dt.datetime:
    """An ISO 8601 timestamp as an aware UTC datetime (naive values are taken as UTC)."""
    parsed = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)


def maybe_when(value: Any) -> dt.datetime | None:
    return None if value is None else when(value)


def _strs(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value or ())


def split_pem(pem: str) -> list[x509.Certificate]:
    """Every certificate in a PEM text, in order (empty text gives an empty list)."""
    return x509.load_pem_x509_certificates(pem.encode()) if pem.strip() else []


def _is_self_signed(cert: x509.Certificate) -> bool:
    return cert.issuer == cert.subject


@dataclass(frozen=True)
class Revocation:
    """Why and when a certificate was revoked."""

    reason: str
    revoked_at: dt.datetime | None = None
    invalidity_date: dt.datetime | None = None

    @classmethod
    def from_json(cls, data: Json) -> Revocation:
        return cls(
            reason=str(data.get("reason", "unspecified")),
            revoked_at=maybe_when(data.get("revoked_at")),
            invalidity_date=maybe_when(data.get("invalidity_date")),
        )


@dataclass(frozen=True)
class Certificate:
    """One issued certificate (`CertificateOut`); `chain_pem` runs up to and including the root."""

    serial: str
    certificate_id: str
    service_id: str | None
    common_name: str | None
    names: tuple[str, ...]
    issuer: str
    profile: str
    status: str
    not_before: dt.datetime
    not_after: dt.datetime
    fingerprint_sha256: str
    download_url: str
    certificate_pem: str
    chain_pem: str
    private_key_pem: str | None = field(default=None, repr=False)
    revocation: Revocation | None = None
    renewed_from: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict, hash=False)

    @classmethod
    def from_json(cls, data: Json) -> Certificate:
        revocation = data.get("revocation")
        return cls(
            serial=str(data["serial"]),
            certificate_id=str(data.get("certificate_id", data["serial"])),
            service_id=data.get("service_id"),
            common_name=data.get("common_name"),
            names=_strs(data.get("names")),
            issuer=str(data.get("issuer", "")),
            profile=str(data.get("profile", "")),
            status=str(data.get("status", "")),
            not_before=when(data["not_before"]),
            not_after=when(data["not_after"]),
            fingerprint_sha256=str(data.get("fingerprint_sha256", "")),
            download_url=str(data.get("download_url", "")),
            certificate_pem=str(data["certificate_pem"]),
            chain_pem=str(data.get("chain_pem") or ""),
            private_key_pem=data.get("private_key_pem"),
            revocation=Revocation.from_json(revocation) if revocation else None,
            renewed_from=data.get("renewed_from"),
            metadata=dict(data.get("metadata") or {}),
        )

    @property
    def certificate(self) -> x509.Certificate:
        """The parsed leaf certificate."""
        return x509.load_pem_x509_certificate(self.certificate_pem.encode())

    def fullchain_pem(self) -> bytes:
        """Leaf then intermediates (no root): what a TLS server presents."""
        issuers = [c for c in split_pem(self.chain_pem) if not _is_self_signed(c)]
        return b"".join(c.public_bytes(Encoding.PEM) for c in [self.certificate, *issuers])

    def roots_pem(self) -> bytes:
        """The self-signed certificates of the chain: the trust anchor to install."""
        roots = [c for c in split_pem(self.chain_pem) if _is_self_signed(c)]
        return b"".join(c.public_bytes(Encoding.PEM) for c in roots)


@dataclass(frozen=True)
class CertificatePage:
    """One page of `GET /certificates`; `total` is an estimate unless `total_exact`."""

    items: tuple[Certificate, ...]
    total: int
    limit: int
    next_cursor: str | None  # None on the last page
    total_exact: bool = True

    @classmethod
    def from_json(cls, data: Json) -> CertificatePage:
        items = tuple(Certificate.from_json(i) for i in data.get("items", ()))
        cursor = data.get("next_cursor")
        return cls(
            items,
            int(data.get("total", len(items))),
            int(data.get("limit", len(items))),
            str(cursor) if cursor is not None else None,
            bool(data.get("total_exact", True)),
        )


@dataclass(frozen=True)
class Service:
    """A registered service (also what discovery returns)."""

    service_id: str
    service_name: str | None = None
    service_type: str | None = None
    endpoints: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    health_check_url: str | None = None
    owner: Mapping[str, Any] = field(default_factory=dict)
    auto_renew: bool = True
    status: str | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    last_seen: dt.datetime | None = None

    @classmethod
    def from_json(cls, data: Json) -> Service:
        return cls(
            service_id=str(data["service_id"]),
            service_name=data.get("service_name"),
            service_type=data.get("service_type"),
            endpoints=_endpoints(data.get("endpoints")),
            names=_strs(data.get("names")),
            health_check_url=data.get("health_check_url"),
            owner=dict(data.get("owner") or {}),
            auto_renew=bool(data.get("auto_renew", True)),
            status=data.get("status"),
            created_at=maybe_when(data.get("created_at")),
            updated_at=maybe_when(data.get("updated_at")),
            last_seen=maybe_when(data.get("last_seen")),
        )

    @classmethod
    def many(cls, data: Any) -> tuple[Service, ...]:
        """A JSON list, or an object with `items` or `services`, of services."""
        if isinstance(data, Mapping):
            data = data.get("items", data.get("services", ()))
        return tuple(cls.from_json(item) for item in data)


def _endpoints(value: Any) -> tuple[str, ...]:
    """Endpoints as URLs; objects with a `url` are accepted too."""
    out = []
    for item in value or ():
        out.append(str(item["url"]) if isinstance(item, Mapping) else str(item))
    return tuple(out)


@dataclass(frozen=True)
class PeerCertificate:
    """A discovered service's current certificate and where it listens."""

    certificate_pem: str
    chain_pem: str
    serial: str
    not_after: dt.datetime
    spiffe_id: str | None
    endpoints: tuple[str, ...]

    @classmethod
    def from_json(cls, data: Json) -> PeerCertificate:
        return cls(
            certificate_pem=str(data["certificate_pem"]),
            chain_pem=str(data.get("chain_pem") or ""),
            serial=str(data["serial"]),
            not_after=when(data["not_after"]),
            spiffe_id=data.get("spiffe_id"),
            endpoints=_endpoints(data.get("endpoints")),
        )


@dataclass(frozen=True)
class CAInfo:
    """One CA of the hierarchy, as `GET /ca` lists it."""

    name: str
    kind: str
    status: str
    parent: str | None
    subject: str | None
    serial: str | None
    not_before: dt.datetime | None
    not_after: dt.datetime | None

    @classmethod
    def from_json(cls, data: Json) -> CAInfo:
        return cls(
            name=str(data["name"]),
            kind=str(data.get("kind", "")),
            status=str(data.get("status", "")),
            parent=data.get("parent"),
            subject=data.get("subject"),
            serial=data.get("serial"),
            not_before=maybe_when(data.get("not_before")),
            not_after=maybe_when(data.get("not_after")),
        )

    @classmethod
    def many(cls, data: Sequence[Json]) -> tuple[CAInfo, ...]:
        return tuple(cls.from_json(item) for item in data)


@dataclass(frozen=True)
class RevocationStatus:
    """`GET /crl/check/{serial}`: is this certificate revoked?"""

    serial: str
    issuer: str
    status: str
    revoked: bool
    revoked_at: dt.datetime | None = None
    reason: str | None = None
    invalidity_date: dt.datetime | None = None

    @classmethod
    def from_json(cls, data: Json) -> RevocationStatus:
        return cls(
            serial=str(data["serial"]),
            issuer=str(data.get("issuer", "")),
            status=str(data.get("status", "")),
            revoked=bool(data.get("revoked", False)),
            revoked_at=maybe_when(data.get("revoked_at")),
            reason=data.get("reason"),
            invalidity_date=maybe_when(data.get("invalidity_date")),
        )


@dataclass(frozen=True)
class WhoAmI:
    """The identity the server read from this client's certificate."""

    service_id: str
    serial: str
    fingerprint_sha256: str
    not_after: dt.datetime

    @classmethod
    def from_json(cls, data: Json) -> WhoAmI:
        return cls(
            service_id=str(data["service_id"]),
            serial=str(data["serial"]),
            fingerprint_sha256=str(data.get("fingerprint_sha256", "")),
            not_after=when(data["not_after"]),
        )


@dataclass(frozen=True)
class ServerRenewalPolicy:
    """When the server counts a certificate as due for renewal (`GET /renewal-policy`)."""

    renew_before: dt.timedelta
    notification_days: tuple[int, ...] = ()

    @classmethod
    def from_json(cls, data: Json) -> ServerRenewalPolicy:
        return cls(
            renew_before=dt.timedelta(days=int(data["renew_before_expiry_days"])),
            notification_days=tuple(int(d) for d in data.get("notification_days", ())),
        )
