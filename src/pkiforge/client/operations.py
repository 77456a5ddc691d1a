"""One builder per API operation: arguments in, a `Call` out. No I/O happens here."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from cryptography import x509

from pkiforge.client.core import API, Call, Reply, segment
from pkiforge.client.models import (
    CAInfo,
    Certificate,
    CertificatePage,
    PeerCertificate,
    RevocationStatus,
    ServerRenewalPolicy,
    Service,
    WhoAmI,
)
from pkiforge.client.payloads import CertificateRequest, ServiceRegistration, ServiceUpdate

Serial = str | int
DownloadFormat = Literal["pem", "der", "chain"]


def _certificate(reply: Reply) -> Certificate:
    return Certificate.from_json(reply.json())


def _service(reply: Reply) -> Service:
    return Service.from_json(reply.json())


def _services(reply: Reply) -> tuple[Service, ...]:
    return Service.many(reply.json())


def _bytes(reply: Reply) -> bytes:
    return reply.content


def _text(reply: Reply) -> str:
    return reply.text()


def _ok(reply: Reply) -> bool:
    return 200 <= reply.status < 300


# --- certificates ---------------------------------------------------------------------------


def request_certificate(
    request: CertificateRequest, *, token: str | None = None
) -> Call[Certificate]:
    """Issue a certificate; `token` is a one-time enrollment token for a first certificate."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return Call(
        "POST", f"{API}/certificates/request", _certificate, body=request.to_json(), headers=headers
    )


def renew_certificate(
    serial: Serial, *, csr: str | None = None, validity_days: int | None = None
) -> Call[Certificate]:
    """Renew a certificate (a new key's CSR, or none to keep the key / let the server make one)."""
    body = {"csr": csr, "validity_days": validity_days}
    return Call("POST", f"{API}/certificates/{segment(serial)}/renew", _certificate, body=body)


def revoke_certificate(
    serial: Serial, reason: str = "unspecified", *, invalidity_date: dt.datetime | None = None
) -> Call[Certificate]:
    """Revoke a certificate (RFC 5280 §5.3.1 reason name)."""
    body = {
        "reason": reason,
        "invalidity_date": invalidity_date.isoformat() if invalidity_date else None,
    }
    return Call("POST", f"{API}/certificates/{segment(serial)}/revoke", _certificate, body=body)


def get_certificate(serial: Serial) -> Call[Certificate]:
    """One certificate by serial."""
    return Call("GET", f"{API}/certificates/{segment(serial)}", _certificate)


def list_certificates(
    *,
    service_id: str | None = None,
    issuer: str | None = None,
    status: str | None = None,
    expiring_before: dt.datetime | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> Call[CertificatePage]:
    """One page of certificates, filtered; pass the page's `next_cursor` for the next."""
    params: dict[str, str | int] = {"limit": limit}
    for name, value in (
        ("service_id", service_id),
        ("issuer", issuer),
        ("status", status),
        ("cursor", cursor),
    ):
        if value is not None:
            params[name] = value
    if expiring_before is not None:
        params["expiring_before"] = expiring_before.isoformat()
    return Call(
        "GET",
        f"{API}/certificates",
        lambda r: CertificatePage.from_json(r.json()),
        params=params,
    )


def download_certificate(serial: Serial, format: DownloadFormat = "pem") -> Call[bytes]:
    """The certificate as PEM, DER or PEM chain."""
    return Call(
        "GET",
        f"{API}/certificates/{segment(serial)}/download",
        _bytes,
        params={"format": format},
    )


# --- services and discovery -----------------------------------------------------------------


def register_service(registration: ServiceRegistration) -> Call[Service]:
    """Register a service."""
    return Call("POST", f"{API}/services/register", _service, body=registration.to_json())


def update_service(service_id: str, changes: ServiceUpdate) -> Call[Service]:
    """Change some fields of a service."""
    return Call("PUT", f"{API}/services/{segment(service_id)}", _service, body=changes.to_json())


def get_service(service_id: str) -> Call[Service]:
    """One registered service."""
    return Call("GET", f"{API}/services/{segment(service_id)}", _service)


def list_services() -> Call[tuple[Service, ...]]:
    """Every registered service."""
    return Call("GET", f"{API}/services", _services)


def discover(service_type: str | None = None) -> Call[tuple[Service, ...]]:
    """Services that can be called, optionally of one type."""
    params: dict[str, str | int] = {"type": service_type} if service_type else {}
    return Call("GET", f"{API}/discovery/services", _services, params=params)


def discover_service(service_id: str) -> Call[Service]:
    """One discoverable service and its endpoints."""
    return Call("GET", f"{API}/discovery/services/{segment(service_id)}", _service)


def peer_certificate(service_id: str) -> Call[PeerCertificate]:
    """A service's current certificate, SPIFFE id and endpoints."""
    return Call(
        "GET",
        f"{API}/discovery/services/{segment(service_id)}/cert",
        lambda r: PeerCertificate.from_json(r.json()),
    )


# --- CA material, revocation, identity, health ----------------------------------------------


def list_cas() -> Call[tuple[CAInfo, ...]]:
    """The root and every intermediate."""
    return Call("GET", f"{API}/ca", lambda r: CAInfo.many(r.json()))


def root_certificate() -> Call[str]:
    """The root certificate (PEM): the trust anchor."""
    return Call("GET", f"{API}/ca/root", _text)


def ca_certificate(name: str) -> Call[str]:
    """One CA certificate (PEM)."""
    return Call("GET", f"{API}/ca/{segment(name)}", _text)


def ca_chain(name: str) -> Call[str]:
    """A CA (its current certificate, then the predecessors a rotation left that are still
    valid) and its issuers up to the root (PEM bundle)."""
    return Call("GET", f"{API}/ca/{segment(name)}/chain", _text)


def ca_bundle() -> Call[str]:
    """Every CA a relying party of this PKI may meet, root last (PEM bundle): what an
    identity's CA bundle holds."""
    return Call("GET", f"{API}/ca/bundle", _text)


def crl(issuer: str) -> Call[x509.CertificateRevocationList]:
    """A CA's current CRL, parsed (and so checked to be DER)."""
    return Call(
        "GET",
        f"{API}/crl/{segment(issuer)}",
        lambda r: x509.load_der_x509_crl(r.content),
        params={"format": "der"},
    )


def check_revocation(serial: Serial) -> Call[RevocationStatus]:
    """Is this serial revoked?"""
    return Call(
        "GET",
        f"{API}/crl/check/{segment(serial)}",
        lambda r: RevocationStatus.from_json(r.json()),
    )


def whoami() -> Call[WhoAmI]:
    """The identity the server reads from this client's certificate."""
    return Call("GET", f"{API}/whoami", lambda r: WhoAmI.from_json(r.json()))


def renewal_policy() -> Call[ServerRenewalPolicy]:
    """When the server counts a certificate as due: the agent's default margin."""
    return Call("GET", f"{API}/renewal-policy", lambda r: ServerRenewalPolicy.from_json(r.json()))


def healthz() -> Call[bool]:
    """The server process is up."""
    return Call("GET", "/healthz", _ok)


def readyz() -> Call[bool]:
    """The server can serve (database and CA available)."""
    return Call("GET", "/readyz", _ok)
