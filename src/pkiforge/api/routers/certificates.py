"""/api/v1/certificates: request, list, show, download, renew, revoke (for services)."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Annotated, Literal

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from fastapi import APIRouter, Body, Query, Request, Response

from pkiforge.api.callers import CallerDep, EnrollingCallerDep
from pkiforge.api.core_calls import core_call
from pkiforge.api.deps import StateDep, app_state
from pkiforge.api.problems import responses
from pkiforge.api.schemas.certificates import (
    CertificateFilters,
    CertificateList,
    CertificateOut,
    CertificateRequest,
    RenewRequest,
    RevokeRequest,
    certificate_out,
    pem,
)
from pkiforge.api.schemas.common import Serial
from pkiforge.api.state import AppState
from pkiforge.api.storage import NEW_WRITES
from pkiforge.ca.crl import parse_reason
from pkiforge.ca.issue_request import IssueRequest
from pkiforge.ca.models import CertificateQuery, CertificateRecord, CertStatus, parse_serial
from pkiforge.ca.paging import decode_cursor, encode_cursor, order_of
from pkiforge.errors import InvalidInput
from pkiforge.x509.csr import load_csr
from pkiforge.x509.keys import parse_key_type, private_key_pem
from pkiforge.x509.names import SubjectName, validate_dns_name, validate_ip, validate_uri

router = APIRouter(
    prefix="/api/v1/certificates", tags=["certificates"], responses=responses(400, 404, 409)
)

PEM_CERT = "application/x-pem-file"
PEM_CHAIN = "application/pem-certificate-chain"  # RFC 8555 §9.1
DER_CERT = "application/pkix-cert"  # RFC 2585 §4.1


def _serial(text: str) -> int:
    try:
        return parse_serial(text)
    except ValueError as exc:
        raise InvalidInput(str(exc), field="serial") from None


def _days(days: int | None) -> dt.timedelta | None:
    return dt.timedelta(days=days) if days is not None else None


def _csr(text: str | None) -> x509.CertificateSigningRequest | None:
    return load_csr(text.encode()) if text is not None else None


def issue_request(body: CertificateRequest) -> IssueRequest:
    """The request body as the domain value `Issuance.issue` takes (names parsed once)."""
    names = [
        SubjectName("DNS", validate_dns_name(v, allow_wildcard=True, field=f"san_dns[{i}]"))
        for i, v in enumerate(body.san_dns)
    ]
    names += [SubjectName("IP", validate_ip(v, f"san_ip[{i}]")) for i, v in enumerate(body.san_ip)]
    names += [
        SubjectName("URI", validate_uri(v, f"san_uri[{i}]")) for i, v in enumerate(body.san_uri)
    ]
    return IssueRequest(
        common_name=body.common_name,
        names=names,
        service_id=body.service_id,
        profile=body.profile,
        issuer=body.issuer,
        validity=_days(body.validity_days),
        metadata=body.metadata or {},
        csr=_csr(body.csr),
        key_type=parse_key_type(body.key_type) if body.key_type else None,
    )


def _render(state: AppState, record: CertificateRecord, key: str | None = None) -> CertificateOut:
    chain = state.pki.hierarchy.chain(record.issuer)
    return certificate_out(record, chain, state.clock.now(), key)


@router.post("/request", status_code=201, response_model=CertificateOut, dependencies=[NEW_WRITES])
@core_call
def request_certificate(
    body: CertificateRequest, caller: EnrollingCallerDep, request: Request, response: Response
) -> CertificateOut:
    """Issue a certificate from a CSR (or with a server-made key, where policy allows).

    Authenticate with a client certificate, or `Authorization: Bearer pkf_...` (a one-time
    enrollment token) for a service's first certificate.
    """
    # the busiest route takes the state from the request, not as a dependency: each
    # dependency FastAPI solves costs more than the lookup
    state = app_state(request)
    issued = state.api.certificates.request(issue_request(body), caller)
    record, key = issued.record, issued.key
    response.headers["Location"] = f"/api/v1/certificates/{record.serial_hex}"
    return _render(state, record, private_key_pem(key).decode() if key is not None else None)


@router.get("", response_model=CertificateList)
def list_certificates(
    filters: Annotated[CertificateFilters, Query()],
    caller: CallerDep,
    state: StateDep,
    request: Request,
    response: Response,
) -> CertificateList:
    """The caller's certificates (anyone's for an admin), a page at a time.

    Newest first; soonest to expire first with `expiring_before`; most recently expired
    first with `status=expired`. Pass `next_cursor` as `cursor` for the next page.
    """
    query = CertificateQuery(
        issuer=filters.issuer,
        status=CertStatus(filters.status) if filters.status else None,
        service_id=filters.service_id,
        expiring_before=filters.expiring_before,
        limit=filters.limit,
    )
    if filters.cursor is not None:
        query = replace(query, after=decode_cursor(filters.cursor, order_of(query)))
    page = state.api.certificates.search(query, caller)
    now = state.clock.now()
    chains = {r.issuer: state.pki.hierarchy.chain(r.issuer) for r in page.items}
    items = [certificate_out(r, chains[r.issuer], now) for r in page.items]
    cursor = encode_cursor(page.next) if page.next is not None else None
    if cursor is not None:  # RFC 8288 §3
        following = request.url.include_query_params(cursor=cursor)
        response.headers["Link"] = f'<{following.path}?{following.query}>; rel="next"'
    return CertificateList(
        items=items,
        next_cursor=cursor,
        limit=filters.limit,
        total=page.total.count,
        total_exact=page.total.exact,
    )


@router.get("/{serial:serial}", response_model=CertificateOut)
def get_certificate(serial: Serial, caller: CallerDep, state: StateDep) -> CertificateOut:
    """One certificate by its hex serial."""
    return _render(state, state.api.certificates.get(_serial(serial), caller))


@router.get(
    "/{serial:serial}/download",
    responses={200: {"content": {PEM_CERT: {}, DER_CERT: {}, PEM_CHAIN: {}}}},
)
def download_certificate(
    serial: Serial,
    caller: CallerDep,
    state: StateDep,
    format: Literal["pem", "der", "chain"] = "pem",
) -> Response:
    """The certificate as PEM, DER, or a PEM chain (leaf, then intermediates; no root)."""
    record = state.api.certificates.get(_serial(serial), caller)
    if record.certificate is None:
        raise InvalidInput(f"certificate {record.serial_hex} was never issued", field="serial")
    name = f"{record.serial_hex}.{'der' if format == 'der' else 'pem'}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    if format == "der":
        return Response(
            record.certificate.public_bytes(Encoding.DER), media_type=DER_CERT, headers=headers
        )
    if format == "chain":
        chain = state.pki.hierarchy.chain(record.issuer)[:-1]  # RFC 8555 §9.1: no root needed
        return Response(pem([record.certificate, *chain]), media_type=PEM_CHAIN, headers=headers)
    return Response(pem([record.certificate]), media_type=PEM_CERT, headers=headers)


@router.post(
    "/{serial:serial}/renew",
    status_code=201,
    response_model=CertificateOut,
    dependencies=[NEW_WRITES],
)
@core_call
def renew_certificate(
    serial: Serial,
    caller: CallerDep,
    state: StateDep,
    response: Response,
    body: Annotated[RenewRequest | None, Body()] = None,
) -> CertificateOut:
    """A successor with the same names (and key, unless a CSR brings a new one)."""
    body = body or RenewRequest()
    record = state.api.certificates.renew(
        _serial(serial),
        caller,
        csr=_csr(body.csr),
        validity=_days(body.validity_days),
    )
    response.headers["Location"] = f"/api/v1/certificates/{record.serial_hex}"
    return _render(state, record)


def _revoke(
    serial: str, caller: CallerDep, state: StateDep, body: RevokeRequest | None
) -> CertificateOut:
    body = body or RevokeRequest()
    record = state.api.certificates.revoke(
        _serial(serial), caller, parse_reason(body.reason), body.invalidity_date
    )
    return _render(state, record)


@router.post("/{serial:serial}/revoke", response_model=CertificateOut)
@core_call
def revoke_certificate(
    serial: Serial,
    caller: CallerDep,
    state: StateDep,
    body: Annotated[RevokeRequest | None, Body()] = None,
) -> CertificateOut:
    """Revoke with an RFC 5280 reason; it appears on the issuer's next CRL."""
    return _revoke(serial, caller, state, body)


@router.delete("/{serial:serial}/revoke", response_model=CertificateOut)
@core_call
def revoke_certificate_delete(
    serial: Serial,
    caller: CallerDep,
    state: StateDep,
    body: Annotated[RevokeRequest | None, Body()] = None,
) -> CertificateOut:
    """The origin documents' spelling of revoke (DELETE); same as POST."""
    return _revoke(serial, caller, state, body)
