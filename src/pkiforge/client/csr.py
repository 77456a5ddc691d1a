"""CSRs made on the service's host: the private key never leaves it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding, load_pem_private_key
from cryptography.x509.oid import NameOID

from pkiforge.errors import InvalidInput
from pkiforge.x509.keys import KeyType, parse_key_type, private_key_pem
from pkiforge.x509.names import SubjectName, parse_san

__all__ = ["Names", "csr_for_renewal", "key_pem", "key_type_of", "load_key", "make_csr"]


@dataclass(frozen=True)
class Names:
    """A service's names split by kind, as the API's `san_dns`, `san_ip` and `san_uri` take them."""

    dns: tuple[str, ...] = ()
    ip: tuple[str, ...] = ()
    uri: tuple[str, ...] = ()

    @classmethod
    def parse(cls, names: Sequence[str]) -> Names:
        """`billing.internal`, `10.0.0.7`, `spiffe://...` or prefixed `DNS:`/`IP:`/`URI:`.

        Raises:
            InvalidName: a name is malformed.
        """
        parsed = [parse_san(n, allow_wildcard=True, field="names") for n in names]
        return cls(*(tuple(n.value for n in parsed if n.kind == k) for k in ("DNS", "IP", "URI")))

    def subject_names(self) -> list[SubjectName]:
        return [
            *(SubjectName("DNS", v) for v in self.dns),
            *(SubjectName("IP", v) for v in self.ip),
            *(SubjectName("URI", v) for v in self.uri),
        ]

    def common_name(self) -> str | None:
        """The first DNS name (else the first IP): what goes in the subject CN."""
        return next(iter(self.dns or self.ip), None)


def _hash(key: CertificateIssuerPrivateKeyTypes) -> hashes.SHA256 | hashes.SHA384 | None:
    """SHA-256, SHA-384 for P-384, none for Ed25519 (RFC 8410 §6)."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return None
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp384r1":
        return hashes.SHA384()
    return hashes.SHA256()


def make_csr(
    key: CertificateIssuerPrivateKeyTypes, common_name: str | None, names: Sequence[SubjectName]
) -> bytes:
    """A PEM CSR for `key` naming `common_name` and the SANs `names`."""
    subject = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, common_name)] if common_name else []
    )
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    if names:
        san = x509.SubjectAlternativeName([n.to_general_name() for n in names])
        builder = builder.add_extension(san, critical=False)
    return builder.sign(key, _hash(key)).public_bytes(Encoding.PEM)


def csr_for_renewal(cert: x509.Certificate, key: CertificateIssuerPrivateKeyTypes) -> bytes:
    """A CSR for `key` with the subject and SANs of the certificate being renewed."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(cert.subject)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        builder = builder.add_extension(san.value, critical=False)
    except x509.ExtensionNotFound:
        pass
    return builder.sign(key, _hash(key)).public_bytes(Encoding.PEM)


def load_key(pem: bytes) -> CertificateIssuerPrivateKeyTypes:
    """An unencrypted PEM private key of a type that can sign a CSR.

    Raises:
        InvalidInput: not a usable private key.
    """
    try:
        key = load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"cannot load the private key: {exc}", field="key") from None
    if isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        return key
    raise InvalidInput("the private key cannot sign a CSR", field="key")


def key_pem(key: CertificateIssuerPrivateKeyTypes) -> bytes:
    """Unencrypted PKCS#8 PEM (the file itself is protected by 0600)."""
    return private_key_pem(key)


def key_type_of(key: CertificateIssuerPrivateKeyTypes) -> KeyType:
    """The policy name of a key's type (`p256`, `rsa2048`, ...), to renew with the same kind.

    Raises:
        InvalidInput: a key type pkiforge does not issue for.
    """
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return parse_key_type(key.curve.name)
    if isinstance(key, rsa.RSAPrivateKey):
        return parse_key_type(f"rsa{key.key_size}")
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "ed25519"
    raise InvalidInput("unsupported key type", field="key")
