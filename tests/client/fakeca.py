"""A tiny in-memory CA for client tests: root and intermediate from committed P-256 keys."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, load_pem_private_key
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.conftest import data_file


def _key(name: str) -> ec.EllipticCurvePrivateKey:
    key = load_pem_private_key(data_file(name), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(Encoding.PEM).decode()


@dataclass
class FakeCA:
    """Signs leaves for CSRs; `validity` is what each leaf gets."""

    validity: dt.timedelta = dt.timedelta(hours=1)
    root_key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: _key("key-p256.pem"))
    ca_key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: _key("key-p256-b.pem"))

    def __post_init__(self) -> None:
        now = dt.datetime.now(dt.UTC)
        self.root = self._sign(
            _name("Fake Root"), _name("Fake Root"), self.root_key.public_key(), self.root_key, now
        )
        self.intermediate = self._sign(
            _name("Fake Services"), _name("Fake Root"), self.ca_key.public_key(), self.root_key, now
        )

    def _sign(
        self,
        subject: x509.Name,
        issuer: x509.Name,
        public: ec.EllipticCurvePublicKey,
        key: ec.EllipticCurvePrivateKey,
        now: dt.datetime,
    ) -> x509.Certificate:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )

    def issue(self, csr: x509.CertificateSigningRequest) -> x509.Certificate:
        """A leaf for the CSR's subject and SANs, valid from now for `validity`."""
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        builder = (
            x509.CertificateBuilder()
            .subject_name(csr.subject)
            .issuer_name(self.intermediate.subject)
            .public_key(csr.public_key())  # type: ignore[arg-type]
            .serial_number(int.from_bytes(secrets.token_bytes(19), "big") | 1 << 150)
            .not_valid_before(now)
            .not_valid_after(now + self.validity)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
        )
        try:
            san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
            builder = builder.add_extension(san.value, critical=False)
        except x509.ExtensionNotFound:
            pass
        return builder.sign(self.ca_key, hashes.SHA256())

    def chain_pem(self) -> str:
        return pem(self.intermediate) + pem(self.root)


def fingerprint(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()
