"""ClientCertificateVerifier: what is remembered per certificate, and what is asked every time.

Certificates are made here with `cryptography` directly, not with pkiforge's CA code, so the
verifier is checked against certificates it had no hand in.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pkiforge.auth import mtls
from pkiforge.auth.mtls import ClientCertificateVerifier
from pkiforge.ca.models import CertStatus
from pkiforge.clock import FixedClock
from pkiforge.errors import AuthenticationFailed

NOW = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.UTC)
DOMAIN = "pkiforge.test"


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _ca(cn: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _leaf(
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    *,
    uri: str | None = f"spiffe://{DOMAIN}/billing",
    eku: Sequence[x509.ObjectIdentifier] = (ExtendedKeyUsageOID.CLIENT_AUTH,),
    serial: int | None = None,
) -> x509.Certificate:
    names: list[x509.GeneralName] = [x509.DNSName("billing")]
    if uri:
        names.append(x509.UniformResourceIdentifier(uri))
    return (
        x509.CertificateBuilder()
        .subject_name(_name("billing"))
        .issuer_name(ca[0].subject)
        .public_key(ec.generate_private_key(ec.SECP256R1()).public_key())
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(hours=1))
        .not_valid_after(NOW + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
        .sign(ca[1], hashes.SHA256())
    )


def _fingerprint(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()


class Store:
    """The standing of each serial, and how often it was asked."""

    def __init__(self) -> None:
        self.rows: dict[int, tuple[CertStatus, str | None]] = {}
        self.asked = 0

    def issue(self, cert: x509.Certificate) -> None:
        self.rows[cert.serial_number] = (CertStatus.ACTIVE, _fingerprint(cert))

    def standing(self, serial: int) -> tuple[CertStatus, str | None] | None:
        self.asked += 1
        return self.rows.get(serial)


@pytest.fixture
def ca() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    return _ca("Test Issuing CA")


def _verifier(
    issuers: list[x509.Certificate], store: Store, clock: FixedClock
) -> ClientCertificateVerifier:
    return ClientCertificateVerifier(lambda: list(issuers), DOMAIN, store.standing, clock)


def _refused(verifier: ClientCertificateVerifier, cert: x509.Certificate | None) -> str:
    with pytest.raises(AuthenticationFailed) as caught:
        verifier.verify(cert)
    return str(caught.value.data["reason"])


def test_identity_is_the_spiffe_service_and_the_store_is_asked_every_time(ca) -> None:  # type: ignore[no-untyped-def]
    store, clock = Store(), FixedClock(NOW)
    leaf = _leaf(ca)
    store.issue(leaf)
    verifier = _verifier([ca[0]], store, clock)
    for _ in range(3):
        identity = verifier.verify(leaf)
    assert identity.service_id == "billing"
    assert identity.serial == leaf.serial_number
    assert identity.fingerprint == _fingerprint(leaf)
    assert store.asked == 3  # revocation is never cached


def _accepted_once(
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    issuers: list[x509.Certificate],
) -> tuple[Store, FixedClock, x509.Certificate, ClientCertificateVerifier]:
    """A verifier that has accepted a fresh leaf once, so its static checks are remembered."""
    store, clock = Store(), FixedClock(NOW)
    leaf = _leaf(ca)
    store.issue(leaf)
    verifier = _verifier(issuers, store, clock)
    verifier.verify(leaf)
    return store, clock, leaf, verifier


def test_revocation_after_a_cached_success_is_seen_at_once(ca) -> None:  # type: ignore[no-untyped-def]
    store, _, leaf, verifier = _accepted_once(ca, [ca[0]])
    store.rows[leaf.serial_number] = (CertStatus.REVOKED, _fingerprint(leaf))
    assert _refused(verifier, leaf) == "revoked"


def test_expiry_after_a_cached_success_is_seen(ca) -> None:  # type: ignore[no-untyped-def]
    _, clock, leaf, verifier = _accepted_once(ca, [ca[0]])
    clock.advance(dt.timedelta(days=2))
    assert _refused(verifier, leaf) == "expired"


def test_an_issuer_that_is_no_longer_active_stops_its_cached_certificates(ca) -> None:  # type: ignore[no-untyped-def]
    issuers = [ca[0]]
    _, _, leaf, verifier = _accepted_once(ca, issuers)
    issuers.clear()
    assert _refused(verifier, leaf) == "untrusted"


def test_a_certificate_from_another_ca_with_the_same_name_is_untrusted(ca) -> None:  # type: ignore[no-untyped-def]
    store, clock = Store(), FixedClock(NOW)
    impostor_ca = _ca("Test Issuing CA")  # same subject, other key
    forged = _leaf(impostor_ca)
    store.issue(forged)
    assert _refused(_verifier([ca[0]], store, clock), forged) == "untrusted"


def test_a_certificate_reusing_an_issued_serial_does_not_match(ca) -> None:  # type: ignore[no-untyped-def]
    store, clock = Store(), FixedClock(NOW)
    issued = _leaf(ca)
    store.issue(issued)
    twin = _leaf(ca, serial=issued.serial_number)
    assert _refused(_verifier([ca[0]], store, clock), twin) == "mismatch"


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"uri": None}, "no-identity"),
        ({"uri": "spiffe://other.domain/billing"}, "no-identity"),
        ({"eku": (ExtendedKeyUsageOID.SERVER_AUTH,)}, "eku"),
    ],
)
def test_what_a_certificate_is_not_good_for_is_refused(ca, kwargs, reason) -> None:  # type: ignore[no-untyped-def]
    store, clock = Store(), FixedClock(NOW)
    leaf = _leaf(ca, **kwargs)
    store.issue(leaf)
    assert _refused(_verifier([ca[0]], store, clock), leaf) == reason


def test_unknown_and_absent_certificates(ca) -> None:  # type: ignore[no-untyped-def]
    store, clock = Store(), FixedClock(NOW)
    verifier = _verifier([ca[0]], store, clock)
    assert _refused(verifier, _leaf(ca)) == "unknown"
    assert _refused(verifier, None) == "no-cert"


def test_the_cache_is_bounded(ca, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(mtls, "CACHE_SIZE", 4)
    store, clock = Store(), FixedClock(NOW)
    verifier = _verifier([ca[0]], store, clock)
    for _ in range(10):
        leaf = _leaf(ca)
        store.issue(leaf)
        verifier.verify(leaf)
    assert len(verifier._checked) == 4
