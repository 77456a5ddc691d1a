"""Service identity from a client certificate: issued by one of our CAs, valid, not revoked,
with clientAuth, naming a service by its SPIFFE URI SAN (never by its CN).

The TLS handshake (OpenSSL, CERT_OPTIONAL against our CA bundle) has already verified the chain
when the certificate came over a direct connection; this check runs again for every request so
that a certificate forwarded by a trusted proxy gets the same scrutiny, and so that revocation
is seen at once (the store is asked, fail closed).

What cannot change for a given certificate (its issuer's signature, its SPIFFE identity, its
EKU) is worked out once and remembered by its DER bytes; what can (validity at this instant,
the issuer still being one of ours, the certificate's standing in the store) is checked on
every request.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from pkiforge.actor import Actor
from pkiforge.clock import Clock, SystemClock
from pkiforge.errors import AuthenticationFailed
from pkiforge.x509.names import service_from_spiffe

# the stored status ("active", "revoked", ...) and SHA-256 fingerprint of a serial, or None if
# it is unknown; the CA's CertStatus is a str enum and fits as it is
StandingLookup = Callable[[int], tuple[str, str | None] | None]
ACTIVE = "active"
REVOKED = "revoked"
CACHE_SIZE = 4096


@dataclass(frozen=True)
class _Checked:
    """What a certificate proved once: its issuer, its service, its fingerprint."""

    issuer: x509.Certificate
    service_id: str
    serial: int
    fingerprint: str
    not_before: dt.datetime
    not_after: dt.datetime


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
        standing: StandingLookup,
        clock: Clock | None = None,
    ) -> None:
        self._issuers = issuers
        self._trust_domain = trust_domain
        self._standing = standing
        self._clock = clock or SystemClock()
        self._checked: OrderedDict[bytes, _Checked] = OrderedDict()
        self._lock = threading.Lock()

    def verify(self, leaf: x509.Certificate | None) -> ServiceIdentity:
        """Raises AuthenticationFailed (reason in the message); StoreUnavailable from lookup."""
        if leaf is None:
            raise AuthenticationFailed("a client certificate is required", reason="no-cert")
        checked = self._static_checks(leaf)
        now = self._clock.now()
        if not (checked.not_before <= now < checked.not_after):
            raise AuthenticationFailed(
                "client certificate is expired or not yet valid", reason="expired"
            )
        standing = self._standing(checked.serial)  # fail closed: StoreUnavailable propagates
        if standing is None:
            raise AuthenticationFailed("client certificate is unknown to this CA", reason="unknown")
        status, fingerprint = standing
        if fingerprint != checked.fingerprint:
            raise AuthenticationFailed(
                "client certificate does not match the issued one", reason="mismatch"
            )
        if status == REVOKED:
            raise AuthenticationFailed("client certificate is revoked", reason="revoked")
        if status != ACTIVE:  # fail closed: any other standing
            raise AuthenticationFailed("client certificate is not active", reason="inactive")
        return ServiceIdentity(
            checked.service_id, checked.serial, checked.fingerprint, checked.not_after
        )

    def _static_checks(self, leaf: x509.Certificate) -> _Checked:
        """Issuer signature, clientAuth and identity: worked out once per certificate."""
        der = leaf.public_bytes(Encoding.DER)
        issuers = self._issuers()
        with self._lock:
            checked = self._checked.get(der)
            if checked is not None:
                self._checked.move_to_end(der)
        if checked is not None and checked.issuer in issuers:  # still one of our active CAs
            return checked
        checked = _Checked(
            self._issuer_of(leaf, issuers),
            self._service_id(_require_client_auth(leaf)),
            leaf.serial_number,
            hashlib.sha256(der).hexdigest(),
            leaf.not_valid_before_utc,
            leaf.not_valid_after_utc,
        )
        with self._lock:
            self._checked[der] = checked
            while len(self._checked) > CACHE_SIZE:
                self._checked.popitem(last=False)
        return checked

    @staticmethod
    def _issuer_of(leaf: x509.Certificate, issuers: Sequence[x509.Certificate]) -> x509.Certificate:
        for issuer in issuers:
            if issuer.subject != leaf.issuer:
                continue
            try:
                leaf.verify_directly_issued_by(issuer)
            except (ValueError, TypeError, InvalidSignature):
                continue
            return issuer
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


def _require_client_auth(leaf: x509.Certificate) -> x509.Certificate:
    try:
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return leaf  # no EKU: any use (RFC 5280 §4.2.1.12)
    if ExtendedKeyUsageOID.CLIENT_AUTH not in eku:
        raise AuthenticationFailed(
            "client certificate is not valid for client authentication", reason="eku"
        )
    return leaf
