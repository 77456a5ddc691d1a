"""OCSP responder (RFC 6960): each issuing CA answers for its own certificates.

Responses are signed by the issuer itself (RFC 6960 §4.2.2.2, no delegated responder), with
responder id by key hash, a nonce echoed when asked (RFC 8954), `good` for an active
certificate, `revoked` with time and reason, and `unknown` for serials this CA never issued.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509 import ocsp

from pkiforge.ca.context import CAContext
from pkiforge.ca.models import CARecord, CertificateRecord, CertStatus
from pkiforge.clock import utc
from pkiforge.errors import Conflict, NotFound
from pkiforge.x509.keys import signature_hash

_HASHES = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha384": hashlib.sha384,
    "sha512": hashlib.sha512,
}
MAX_REQUEST_BYTES = 16 * 1024


def _key_bits(cert: x509.Certificate) -> bytes:
    """The subjectPublicKey BIT STRING contents, which the issuer key hash covers."""
    key = cert.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        return key.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
    if isinstance(key, rsa.RSAPublicKey):
        return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    raise TypeError(f"unsupported issuer key {type(key).__name__}")


@dataclass(frozen=True)
class _Issuer:
    ca: CARecord
    certificate: x509.Certificate


class OCSPResponder:
    """Answer DER OCSP requests with DER OCSP responses."""

    def __init__(self, ctx: CAContext, validity: dt.timedelta = dt.timedelta(hours=1)) -> None:
        self.ctx = ctx
        self.validity = validity

    def respond(self, request_der: bytes) -> bytes:
        """Never raises for a bad request: OCSP has its own error statuses (§2.3)."""
        request = _load(request_der)
        if request is None:
            return _unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
        try:
            algorithm = request.hash_algorithm
        except UnsupportedAlgorithm:  # e.g. SHA-3: no CertID of ours can match it
            return _unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED)
        issuer = self._issuer(request, algorithm)
        if issuer is None:
            return _unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED)
        try:
            signer = self.ctx.signer(issuer.ca, retired=True)
        except (Conflict, NotFound):  # key offline (root) or missing: ask again later
            return _unsuccessful(ocsp.OCSPResponseStatus.TRY_LATER)
        record = self._record(request.serial_number, issuer.ca.name)
        now = utc(self.ctx.clock.now()).replace(microsecond=0)
        builder = _add_status(
            ocsp.OCSPResponseBuilder(), request, algorithm, record, now, now + self.validity
        )
        builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, issuer.certificate)
        try:
            nonce = request.extensions.get_extension_for_class(x509.OCSPNonce)
            builder = builder.add_extension(nonce.value, critical=False)
        except x509.ExtensionNotFound:
            pass
        response = builder.sign(signer.key, signature_hash(signer.key.public_key()))
        return response.public_bytes(serialization.Encoding.DER)

    def _issuer(self, request: ocsp.OCSPRequest, algorithm: hashes.HashAlgorithm) -> _Issuer | None:
        digest = _HASHES.get(algorithm.name)
        if digest is None:
            return None
        with self.ctx.store.transaction(readonly=True) as tx:
            cas = tx.cas.list()
        for ca in cas:
            cert = ca.certificate
            if cert is None or not ca.in_service:
                continue
            if (
                digest(cert.subject.public_bytes()).digest() == request.issuer_name_hash
                and digest(_key_bits(cert)).digest() == request.issuer_key_hash
            ):
                return _Issuer(ca, cert)
        return None

    def _record(self, serial: int, issuer: str) -> CertificateRecord | None:
        with self.ctx.store.transaction(readonly=True) as tx:
            record = tx.certificates.get(serial)
        if record is None or record.issuer != issuer or record.certificate is None:
            return None
        return record


def _load(der: bytes) -> ocsp.OCSPRequest | None:
    """The request if it is one we can answer, else None (answered malformedRequest).

    RFC 6960 §4.1.1 allows several CertIDs in one request, but cryptography can neither read
    nor answer more than one; its extensions are parsed here so a bad one is refused up front.
    """
    if len(der) > MAX_REQUEST_BYTES:
        return None
    try:
        request = ocsp.load_der_ocsp_request(der)
        request.extensions  # noqa: B018  (parsed on first use; may be malformed or repeated)
    except (ValueError, TypeError, NotImplementedError, x509.DuplicateExtension):
        return None  # NotImplementedError: no CertID, or more than one
    return request


def _add_status(
    builder: ocsp.OCSPResponseBuilder,
    request: ocsp.OCSPRequest,
    algorithm: hashes.HashAlgorithm,
    record: CertificateRecord | None,
    now: dt.datetime,
    next_update: dt.datetime,
) -> ocsp.OCSPResponseBuilder:
    status, revoked_at, reason = ocsp.OCSPCertStatus.UNKNOWN, None, None
    if record is not None and record.status is CertStatus.REVOKED and record.revocation:
        status = ocsp.OCSPCertStatus.REVOKED
        revoked_at = record.revocation.revoked_at.replace(microsecond=0)
        reason = record.revocation.reason
    elif record is not None and record.status is CertStatus.ACTIVE:
        status = ocsp.OCSPCertStatus.GOOD
    return builder.add_response_by_hash(
        issuer_name_hash=request.issuer_name_hash,
        issuer_key_hash=request.issuer_key_hash,
        serial_number=request.serial_number,
        algorithm=algorithm,
        cert_status=status,
        this_update=now,
        next_update=next_update,
        revocation_time=revoked_at,
        revocation_reason=reason,
    )


def _unsuccessful(status: ocsp.OCSPResponseStatus) -> bytes:
    return ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(
        serialization.Encoding.DER
    )
