"""Service identity from a client certificate: issued by one of our CAs, valid, not revoked,
with clientAuth, naming a service by its SPIFFE URI SAN (never by its CN).

The TLS handshake (OpenSSL, CERT_OPTIONAL against our CA bundle) has already verified the chain
when the certificate came over a direct connection; this check runs again for every request so
that a certificate forwarded by a trusted proxy gets the same scrutiny, and so that revocation
is seen at once (the store is asked, fail closed).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID

from pkiforge.ca.models import Actor, CertificateRecord, CertStatus
from pkiforge.clock import Clock, SystemClock
from pkiforge.errors import AuthenticationFailed
from pkiforge.x509.names import service_from_spiffe

RecordLookup = Callable[[int], CertificateRecord | None]


@dataclass(frozen=True)
class ServiceIdentity:
    """A verified caller."""

    service_id: str
    serial: int
    fingerprint: str
    not_after: dt.datetime

    def actor(self, address: str | None) -> Actor:
        return Actor("service", self.service_id, address)


class ClientCertificateVerifier:
    """Turn a presented leaf certificate into a ServiceIdentity, or refuse with a reason."""

    def __init__(
        self,
        issuers: Callable[[], Sequence[x509.Certificate]],
        trust_domain: str,
        lookup: RecordLookup,
        clock: Clock | None = None,
    ) -> None:
        self._issuers = issuers
        self._trust_domain = trust_domain
        self._lookup = lookup
        self._clock = clock or SystemClock()

    def verify(self, leaf: x509.Certificate | None) -> ServiceIdentity:
        """Raises AuthenticationFailed (reason in the message); StoreUnavailable from lookup."""
        if leaf is None:
            raise AuthenticationFailed("a client certificate is required", reason="no-cert")
        self._check_issuer(leaf)
        now = self._clock.now()
        if not (leaf.not_valid_before_utc <= now < leaf.not_valid_after_utc):
            raise AuthenticationFailed(
                "client certificate is expired or not yet valid", reason="expired"
            )
        _require_client_auth(leaf)
        service = self._service_id(leaf)
        record = self._lookup(leaf.serial_number)  # fail closed: StoreUnavailable propagates
        if record is None or record.certificate is None:
            raise AuthenticationFailed("client certificate is unknown to this CA", reason="unknown")
        if record.certificate != leaf:
            raise AuthenticationFailed(
                "client certificate does not match the issued one", reason="mismatch"
            )
        if record.status is CertStatus.REVOKED:
            raise AuthenticationFailed("client certificate is revoked", reason="revoked")
        if record.status is not CertStatus.ACTIVE:
            raise AuthenticationFailed("client certificate is not active", reason="inactive")
        return ServiceIdentity(
            service,
            leaf.serial_number,
            leaf.fingerprint(hashes.SHA256()).hex(),
            leaf.not_valid_after_utc,
        )

    def _check_issuer(self, leaf: x509.Certificate) -> None:
        for issuer in self._issuers():
            if issuer.subject != leaf.issuer:
                continue
            try:
                leaf.verify_directly_issued_by(issuer)
            except (ValueError, TypeError, InvalidSignature):
                continue
            return
        raise AuthenticationFailed(
            "client certificate was not issued by this CA", reason="untrusted"
        )

    def _service_id(self, leaf: x509.Certificate) -> str:
        try:
            san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            san = x509.SubjectAlternativeName([])
        for uri in san.get_values_for_type(x509.UniformResourceIdentifier):
            service = service_from_spiffe(uri, self._trust_domain)
            if service is not None:
                return service
        raise AuthenticationFailed(
            "client certificate names no service (SPIFFE URI SAN)", reason="no-identity"
        )


def _require_client_auth(leaf: x509.Certificate) -> None:
    try:
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return  # no EKU: any use (RFC 5280 §4.2.1.12)
    if ExtendedKeyUsageOID.CLIENT_AUTH not in eku:
        raise AuthenticationFailed(
            "client certificate is not valid for client authentication", reason="eku"
        )
