"""OCSP responder (RFC 6960): each issuing CA answers for its own certificates.

Responses are signed by the CA's delegated responder (RFC 6960 §4.2.2.2, ca/ocsp_responders.py),
with responder id by key hash and the responder certificate included: `good` for an active
certificate, `revoked` with time and reason, and `unknown` (or the unsigned `unauthorized`, as
configured) for serials this CA never issued. Answers for certificates are cached in the store.
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
from pkiforge.ca.ocsp_records import CachedAnswer
from pkiforge.ca.ocsp_responders import Responders
from pkiforge.clock import utc
from pkiforge.errors import BadPassphrase, Conflict, NotFound
from pkiforge.x509.keys import signature_hash

_HASHES = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha384": hashlib.sha384,
    "sha512": hashlib.sha512,
}
MAX_REQUEST_BYTES = 16 * 1024
_KEEP_ATTEMPTS = 3


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
class OCSPAnswer:
    """A DER OCSP response, and the window of its single answer (None for error statuses
    and unknown serials: not for HTTP caches)."""

    der: bytes
    this_update: dt.datetime | None = None
    next_update: dt.datetime | None = None


@dataclass(frozen=True)
class _CertID:
    name_hash: bytes
    key_hash: bytes
    serial: int
    algorithm: hashes.HashAlgorithm


@dataclass(frozen=True)
class _IssuerIndex:
    """The CAs in service by (algorithm, issuerNameHash, issuerKeyHash), for one CA view."""

    cas: dict[str, CARecord]
    by_hash: dict[tuple[str, bytes, bytes], CARecord]


def _index(cas: dict[str, CARecord]) -> _IssuerIndex:
    by_hash = {}
    for ca in cas.values():
        cert = ca.certificate
        if cert is None or not ca.in_service:
            continue
        for name, digest in _HASHES.items():
            key = (
                name,
                digest(cert.subject.public_bytes()).digest(),
                digest(_key_bits(cert)).digest(),
            )
            by_hash[key] = ca
    return _IssuerIndex(cas, by_hash)


_STATUS = {
    CertStatus.ACTIVE: ocsp.OCSPCertStatus.GOOD,
    CertStatus.REVOKED: ocsp.OCSPCertStatus.REVOKED,
}


class OCSPResponder:
    """Answer DER OCSP requests with DER OCSP responses, from the shared cache when it can.

    An answer for a certificate (good or revoked) is signed once by the CA's delegated
    responder (ca/ocsp_responders.py) and kept in the store for every replica, until the
    scheduler's `ocsp-refresh` job signs it again before its nextUpdate; a revocation drops it
    in its own transaction and signs the revoked answer after its commit. A request with a
    nonce gets the cached answer without nonce, or a fresh one echoing it when
    `ocsp.fresh_nonce` is on (RFC 8954 lets a responder ignore the nonce).
    """

    def __init__(self, ctx: CAContext, responders: Responders | None = None) -> None:
        self.ctx = ctx
        self.responders = responders or Responders(ctx)
        self._issuers: _IssuerIndex | None = None

    def respond(self, request_der: bytes) -> bytes:
        """The DER response to a DER request (see `answer`)."""
        return self.answer(request_der).der

    def answer(self, request_der: bytes) -> OCSPAnswer:
        """Never raises for a bad request: OCSP has its own error statuses (§2.3).

        Raises:
            StoreUnavailable: the store cannot be read.
        """
        request = _load(request_der)
        if request is None:
            return _unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
        try:
            algorithm = request.hash_algorithm
        except UnsupportedAlgorithm:  # e.g. SHA-3: no CertID of ours can match it
            return _unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED)
        ca = self._issuer(request, algorithm)
        if ca is None:
            return _unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED)
        cert_id = _CertID(
            request.issuer_name_hash, request.issuer_key_hash, request.serial_number, algorithm
        )
        nonce = _nonce(request)
        if nonce is not None and self.ctx.config.ocsp.fresh_nonce:
            return self._signed(ca, cert_id, self._record(cert_id.serial, ca.name), nonce)[0]
        now = utc(self.ctx.clock.now())
        with self.ctx.store.transaction(readonly=True) as tx:
            cached = tx.ocsp.answer(ca.name, cert_id.serial, algorithm.name)
        quarter = self.ctx.config.ocsp.response_validity / 4
        if cached is not None and now < cached.next_update - quarter:
            return OCSPAnswer(cached.der, cached.this_update, cached.next_update)
        return self._sign_and_keep(ca, cert_id)

    def presign(self, issuer: str, serial: int) -> bool:
        """Sign and keep the SHA-1 answer (what clients ask by default) for one certificate;
        False when its issuer cannot answer now (key offline, not in service).

        Raises:
            StoreUnavailable.
        """
        ca = self.ctx.cas().get(issuer)
        if ca is None or ca.certificate is None or not ca.in_service:
            return False
        # RFC 5019 §2.1.1: clients' CertIDs are hashed with SHA-1 (names, not signatures)
        algorithm, digest = hashes.SHA1(), _HASHES["sha1"]  # noqa: S303
        cert = ca.certificate
        cert_id = _CertID(
            digest(cert.subject.public_bytes()).digest(),
            digest(_key_bits(cert)).digest(),
            serial,
            algorithm,
        )
        return self._sign_and_keep(ca, cert_id).this_update is not None

    def refresh_due(self) -> int:
        """Sign again up to `ocsp.refresh_batch` cached answers past half of their validity;
        how many.

        Raises:
            StoreUnavailable.
        """
        now = utc(self.ctx.clock.now())
        half = self.ctx.config.ocsp.response_validity / 2
        with self.ctx.store.transaction(readonly=True) as tx:
            due = tx.ocsp.due(now + half, self.ctx.config.ocsp.refresh_batch)
        done = 0
        for issuer, serial, name in due:
            ca = self.ctx.cas().get(issuer)
            if ca is None or ca.certificate is None or not ca.in_service:
                continue
            with self.ctx.store.transaction(readonly=True) as tx:
                cached = tx.ocsp.answer(issuer, serial, name)
            if cached is None:
                continue  # a revocation dropped it meanwhile
            response = ocsp.load_der_ocsp_response(cached.der)
            cert_id = _CertID(
                response.issuer_name_hash,
                response.issuer_key_hash,
                serial,
                response.hash_algorithm,
            )
            if self._sign_and_keep(ca, cert_id).this_update is not None:
                done += 1
        return done

    def _sign_and_keep(self, ca: CARecord, cert_id: _CertID) -> OCSPAnswer:
        """Sign an answer from the certificate's status and keep it; a revocation committed
        between reading the status and keeping the answer makes it read again."""
        for _ in range(_KEEP_ATTEMPTS):
            record = self._record(cert_id.serial, ca.name)
            answer, status = self._signed(ca, cert_id, record, None)
            if status is None or answer.this_update is None or answer.next_update is None:
                return answer  # unknown, or an error status: never kept
            kept = CachedAnswer(
                ca.name,
                cert_id.serial,
                cert_id.algorithm.name,
                status.name.lower(),
                answer.this_update,
                answer.next_update,
                answer.der,
            )
            with self.ctx.store.transaction(durable=False) as tx:
                if tx.ocsp.keep(kept):
                    return answer
        return _unsuccessful(ocsp.OCSPResponseStatus.TRY_LATER)  # its status keeps changing

    def _signed(
        self,
        ca: CARecord,
        cert_id: _CertID,
        record: CertificateRecord | None,
        nonce: x509.OCSPNonce | None,
    ) -> tuple[OCSPAnswer, ocsp.OCSPCertStatus | None]:
        """The answer signed by `ca`'s responder, and the status it gives (None: unknown)."""
        status = _STATUS.get(record.status) if record is not None else None
        if status is None and self.ctx.config.ocsp.unknown_unauthorized:
            return _unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED), None
        try:
            responder = self.responders.current(ca)
        except (Conflict, NotFound, BadPassphrase):  # no responder, CA key offline: later
            return _unsuccessful(ocsp.OCSPResponseStatus.TRY_LATER), None
        now = utc(self.ctx.clock.now()).replace(microsecond=0)
        next_update = min(
            now + self.ctx.config.ocsp.response_validity,
            responder.certificate.not_valid_after_utc,
        )
        builder = _add_status(ocsp.OCSPResponseBuilder(), cert_id, record, now, next_update)
        builder = builder.responder_id(
            ocsp.OCSPResponderEncoding.HASH, responder.certificate
        ).certificates([responder.certificate])
        if nonce is not None:
            builder = builder.add_extension(nonce, critical=False)
        response = builder.sign(responder.key, signature_hash(responder.key.public_key()))
        der = response.public_bytes(serialization.Encoding.DER)
        if status is None:
            return OCSPAnswer(der), None
        return OCSPAnswer(der, now, next_update), status

    def _issuer(
        self, request: ocsp.OCSPRequest, algorithm: hashes.HashAlgorithm
    ) -> CARecord | None:
        cas = self.ctx.cas()
        index = self._issuers
        if index is None or index.cas is not cas:
            index = self._issuers = _index(cas)
        return index.by_hash.get(
            (algorithm.name, request.issuer_name_hash, request.issuer_key_hash)
        )

    def _record(self, serial: int, issuer: str) -> CertificateRecord | None:
        with self.ctx.store.transaction(readonly=True) as tx:
            record = tx.certificates.get(serial)
        if record is None or record.issuer != issuer or record.certificate is None:
            return None
        return record


def _nonce(request: ocsp.OCSPRequest) -> x509.OCSPNonce | None:
    try:
        return request.extensions.get_extension_for_class(x509.OCSPNonce).value
    except x509.ExtensionNotFound:
        return None


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
    cert_id: _CertID,
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
        issuer_name_hash=cert_id.name_hash,
        issuer_key_hash=cert_id.key_hash,
        serial_number=cert_id.serial,
        algorithm=cert_id.algorithm,
        cert_status=status,
        this_update=now,
        next_update=next_update,
        revocation_time=revoked_at,
        revocation_reason=reason,
    )


def _unsuccessful(status: ocsp.OCSPResponseStatus) -> OCSPAnswer:
    return OCSPAnswer(_UNSUCCESSFUL[status])


# the unsigned error responses (RFC 6960 §2.3) are constants: built once
_UNSUCCESSFUL: dict[ocsp.OCSPResponseStatus, bytes] = {
    status: ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(
        serialization.Encoding.DER
    )
    for status in ocsp.OCSPResponseStatus
    if status is not ocsp.OCSPResponseStatus.SUCCESSFUL
}
