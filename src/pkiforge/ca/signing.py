"""An issuer ready to sign: certificate + private key, and the hash that fits its key."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes

from pkiforge.x509.keys import signature_hash


@dataclass(frozen=True)
class SigningCA:
    """A CA whose key is loaded; never logged or shown (its repr hides the key)."""

    certificate: x509.Certificate
    key: CertificateIssuerPrivateKeyTypes

    def __repr__(self) -> str:
        return f"SigningCA({self.certificate.subject.rfc4514_string()!r})"

    def sign_certificate(self, builder: x509.CertificateBuilder) -> x509.Certificate:
        return sign_certificate(self.key, builder)

    def sign_crl(
        self, builder: x509.CertificateRevocationListBuilder
    ) -> x509.CertificateRevocationList:
        return builder.sign(self.key, signature_hash(self.key.public_key()))  # type: ignore[arg-type]


def sign_certificate(
    key: CertificateIssuerPrivateKeyTypes, builder: x509.CertificateBuilder
) -> x509.Certificate:
    """Sign with SHA-256 (RSA, P-256), SHA-384 (P-384) or pure Ed25519 (RFC 8410 §6)."""
    return builder.sign(key, signature_hash(key.public_key()))  # type: ignore[arg-type]
