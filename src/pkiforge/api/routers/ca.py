"""Public CA material: CA certificates, chains, CRLs, and revocation checks by serial."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from fastapi import APIRouter, Body, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from pkiforge.api.callers import CallerDep
from pkiforge.api.core_calls import core_call
from pkiforge.api.deps import StateDep
from pkiforge.api.problems import responses
from pkiforge.api.schemas.common import CA_NAME_PATTERN, Serial
from pkiforge.api.state import AppState
from pkiforge.api.storage import NEW_WRITES
from pkiforge.ca.authorization import require_admin
from pkiforge.ca.crl import parse_reason, reason_name
from pkiforge.ca.models import CARecord, parse_serial
from pkiforge.errors import Conflict, InvalidInput
from pkiforge.x509.keys import KeyType, describe_key

router = APIRouter(prefix="/api/v1", tags=["ca"], responses=responses(400, 404, 409))

PEM_CERT = "application/x-pem-file"
PEM_CHAIN = "application/pem-certificate-chain"  # RFC 8555 §9.1
DER_CERT = "application/pkix-cert"  # RFC 2585 §4.1
DER_CRL = "application/pkix-crl"  # RFC 2585 §4.2

CAName = Annotated[str, Path(pattern=CA_NAME_PATTERN, description="CA name")]
Format = Annotated[Literal["pem", "der"], Query(description="pem or der")]


class CAInfo(BaseModel):
    name: str
    kind: str
    status: str
    parent: str | None
    subject: str | None
    serial: str | None
    key: str | None
    not_before: dt.datetime | None
    not_after: dt.datetime | None
    certificate_url: str
    chain_url: str
    crl_url: str


def _info(ca: CARecord) -> CAInfo:
    cert = ca.certificate
    return CAInfo(
        name=ca.name,
        kind=ca.kind.value,
        status=ca.status.value,
        parent=ca.parent,
        subject=cert.subject.rfc4514_string() if cert else None,
        serial=format(cert.serial_number, "x") if cert else None,
        key=describe_key(cert.public_key()) if cert else None,
        not_before=cert.not_valid_before_utc if cert else None,
        not_after=cert.not_valid_after_utc if cert else None,
        certificate_url=f"/api/v1/ca/{ca.name}",
        chain_url=f"/api/v1/ca/{ca.name}/chain",
        crl_url=f"/api/v1/crl/{ca.name}",
    )


def _cert_response(cert: x509.Certificate, fmt: str) -> Response:
    if fmt == "der":
        return Response(cert.public_bytes(Encoding.DER), media_type=DER_CERT)
    return Response(cert.public_bytes(Encoding.PEM), media_type=PEM_CERT)


@router.get("/ca", response_model=list[CAInfo])
def list_cas(state: StateDep) -> list[CAInfo]:
    """The root and every intermediate."""
    return [_info(ca) for ca in state.pki.hierarchy.all()]


@router.get("/ca/root", responses={200: {"content": {PEM_CERT: {}, DER_CERT: {}}}})
def root_certificate(state: StateDep, format: Format = "pem") -> Response:
    """The root certificate (the trust anchor every service installs)."""
    return _ca_response("root", state, format)


@router.get("/ca/bundle", responses={200: {"content": {PEM_CHAIN: {}}}})
def trust_bundle(state: StateDep) -> Response:
    """PEM bundle of every CA a relying party may meet: the issuing intermediates, the
    predecessors a rotation left that are still valid, then the root. Agents install it as
    their CA bundle and fetch it again, so a rotation reaches them without a manual step."""
    certs = state.pki.hierarchy.trust_bundle()
    return Response(b"".join(c.public_bytes(Encoding.PEM) for c in certs), media_type=PEM_CHAIN)


@router.get("/ca/intermediate", responses={200: {"content": {PEM_CERT: {}, DER_CERT: {}}}})
def default_intermediate(state: StateDep, format: Format = "pem") -> Response:
    """The default issuing intermediate's certificate."""
    return _ca_response(state.settings.ca.default_issuer, state, format)


@router.get("/ca/{name}", responses={200: {"content": {PEM_CERT: {}, DER_CERT: {}}}})
def ca_certificate(name: CAName, state: StateDep, format: Format = "pem") -> Response:
    """One CA certificate."""
    return _ca_response(name, state, format)


def _ca_response(name: str, state: AppState, format: str) -> Response:
    ca = state.pki.ctx.issuing_ca(name)  # after a rotation: the successor issuing now
    if ca.certificate is None:
        raise Conflict(f"CA {name!r} has no certificate yet ({ca.status.value})")
    return _cert_response(ca.certificate, format)


@router.get("/ca/{name}/info", response_model=CAInfo)
def ca_info(name: CAName, state: StateDep) -> CAInfo:
    """What is known about one CA."""
    return _info(state.pki.hierarchy.get(name))


@router.get("/ca/{name}/chain", responses={200: {"content": {PEM_CHAIN: {}}}})
def ca_chain(name: CAName, state: StateDep) -> Response:
    """PEM bundle: the CA's current certificate, the predecessors a rotation left that are
    still valid (clients trust both during the overlap), then its issuers up to the root."""
    certs = state.pki.hierarchy.bundle(name)
    return Response(b"".join(c.public_bytes(Encoding.PEM) for c in certs), media_type=PEM_CHAIN)


class CARevokeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="unspecified", max_length=64, description="RFC 5280 reason")
    invalidity_date: dt.datetime | None = None


class CARevokedOut(BaseModel):
    ca: CAInfo
    serial: str
    reason: str
    revoked_at: dt.datetime
    invalidity_date: dt.datetime | None
    default_issuer: bool
    root_crl_number: int | None
    root_crl_pending: str | None = Field(
        description="why the root's CRL was not signed now (its key is offline ...): sign it "
        "with `pkiforge crl generate --issuer root --root-key FILE`"
    )


@router.post("/ca/{name}/revoke", response_model=CARevokedOut)
@core_call
def revoke_ca(
    name: CAName,
    caller: CallerDep,
    state: StateDep,
    body: Annotated[CARevokeRequest | None, Body()] = None,
) -> CARevokedOut:
    """Revoke an intermediate CA (admin only): it issues nothing more, mTLS refuses the
    certificates under it, and the root's CRL lists it. The root is never revoked."""
    require_admin(caller, "revoke a CA")
    body = body or CARevokeRequest()
    done = state.pki.ca_revocation.revoke(
        name,
        parse_reason(body.reason),
        invalidity_date=body.invalidity_date,
        actor=caller.actor,
    )
    rev = done.certificate.revocation
    assert rev is not None
    return CARevokedOut(
        ca=_info(done.ca),
        serial=done.certificate.serial_hex,
        reason=reason_name(rev.reason),
        revoked_at=rev.revoked_at,
        invalidity_date=rev.invalidity_date,
        default_issuer=done.was_default_issuer,
        root_crl_number=done.root_crl.number if done.root_crl else None,
        root_crl_pending=done.root_crl_problem,
    )


class RotateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key_type: KeyType | None = Field(default=None, description="default: as now")
    validity_days: int | None = Field(default=None, ge=1, le=36500)


class RotatedOut(BaseModel):
    successor: CAInfo
    retired: list[str]


@router.post("/ca/{name}/rotate", response_model=RotatedOut, dependencies=[NEW_WRITES])
@core_call
def rotate_ca(
    name: CAName,
    caller: CallerDep,
    state: StateDep,
    body: Annotated[RotateRequest | None, Body()] = None,
) -> RotatedOut:
    """Rotate an intermediate (admin only; the root key must be held by the server): a
    successor with a new key issues from now on, the predecessor keeps answering OCSP and
    signing CRLs for what it issued. With an offline root, use `pkiforge ca rotate --csr-out`."""
    require_admin(caller, "rotate a CA")
    body = body or RotateRequest()
    done = state.pki.rotation.rotate(
        name,
        body.key_type,
        dt.timedelta(days=body.validity_days) if body.validity_days else None,
        actor=caller.actor,
    )
    return RotatedOut(successor=_info(done.successor), retired=list(done.retired))


@router.get("/crl", responses={200: {"content": {DER_CRL: {}, PEM_CERT: {}}}})
def default_crl(state: StateDep, format: Format = "der") -> Response:
    """The CRL of the default issuer's current generation (after a rotation, each
    predecessor's CRL stays at `/crl/{its name}`, the URL its certificates carry)."""
    current = state.pki.ctx.issuing_ca(state.settings.ca.default_issuer)
    return _crl_response(current.name, state, format)


@router.get("/crl/{issuer}", responses={200: {"content": {DER_CRL: {}, PEM_CERT: {}}}})
def crl(issuer: CAName, state: StateDep, format: Format = "der") -> Response:
    """The issuer's signed CRL (DER `application/pkix-crl`, or PEM with ?format=pem); a
    revocation is on it within seconds (`crl.rebuild_delay`)."""
    return _crl_response(issuer, state, format)


@router.get("/crl/{issuer}/delta", responses={200: {"content": {DER_CRL: {}, PEM_CERT: {}}}})
def delta_crl(issuer: CAName, state: StateDep, format: Format = "der") -> Response:
    """The issuer's delta CRL (RFC 5280 §5.2.4): revocations since the full CRL it names in
    its delta CRL indicator; 409 while `crl.delta` is off."""
    record = state.pki.revocation.current_delta(issuer)
    headers = {"Cache-Control": f"max-age={_max_age(record.next_update, state)}"}
    return _crl_bytes(record.der, format, headers)


def _crl_bytes(der: bytes, format: str, headers: dict[str, str]) -> Response:
    if format == "pem":
        pem = x509.load_der_x509_crl(der).public_bytes(Encoding.PEM)
        return Response(pem, media_type=PEM_CERT, headers=headers)
    return Response(der, media_type=DER_CRL, headers=headers)


def _crl_response(issuer: str, state: AppState, format: str) -> Response:
    served = state.pki.revocation.current_crl(issuer)
    record = served.record
    # one missing a revocation is replaced within seconds: caches must ask again
    max_age = 0 if served.missing_revocations else _max_age(record.next_update, state)
    headers = {"Cache-Control": f"max-age={max_age}"}
    if format == "pem":
        pem = x509.load_der_x509_crl(record.der).public_bytes(Encoding.PEM)
        return Response(pem, media_type=PEM_CERT, headers=headers)
    return Response(record.der, media_type=DER_CRL, headers=headers)


def _max_age(next_update: dt.datetime, state: StateDep) -> int:
    return max(0, int((next_update - state.clock.now()).total_seconds() / 2))


class RevocationStatus(BaseModel):
    serial: str
    issuer: str
    status: str
    revoked: bool
    revoked_at: dt.datetime | None = None
    reason: str | None = None
    invalidity_date: dt.datetime | None = None


@router.get("/crl/check/{serial:serial}", response_model=RevocationStatus)
def check(serial: Serial, state: StateDep) -> RevocationStatus:
    """Is this certificate revoked? (404 if the serial is unknown.)"""
    try:
        number = parse_serial(serial)
    except ValueError as exc:
        raise InvalidInput(str(exc), field="serial") from None
    record = state.pki.revocation.is_revoked(number)
    rev = record.revocation
    return RevocationStatus(
        serial=record.serial_hex,
        issuer=record.issuer,
        status=record.state(state.clock.now()).value,
        revoked=rev is not None,
        revoked_at=rev.revoked_at if rev else None,
        reason=reason_name(rev.reason) if rev else None,
        invalidity_date=rev.invalidity_date if rev else None,
    )
