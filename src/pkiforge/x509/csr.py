"""Load and check certificate signing requests (PKCS#10, RFC 2986)."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import NameOID

from pkiforge.errors import InvalidCSR
from pkiforge.x509.keys import check_public_key
from pkiforge.x509.names import SubjectName, from_general_names

MAX_CSR_BYTES = 64 * 1024


@dataclass(frozen=True)
class CheckedCSR:
    """A CSR whose signature verified and whose key passed the key policy."""

    csr: x509.CertificateSigningRequest
    public_key: CertificatePublicKeyTypes
    common_name: str | None
    names: tuple[SubjectName, ...]


def load_csr(data: bytes) -> x509.CertificateSigningRequest:
    """Parse a PEM or DER CSR.

    Raises:
        InvalidCSR: empty, too large or unparsable.
    """
    if not data.strip():
        raise InvalidCSR("CSR is empty", field="csr")
    if len(data) > MAX_CSR_BYTES:
        raise InvalidCSR(f"CSR is larger than {MAX_CSR_BYTES} bytes", field="csr")
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_csr(data)
        return x509.load_der_x509_csr(data)
    except ValueError:
        raise InvalidCSR(
            "CSR could not be parsed: expected a PEM 'CERTIFICATE REQUEST' or DER PKCS#10",
            field="csr",
        ) from None


def check_csr(csr: x509.CertificateSigningRequest, *, allow_wildcard: bool) -> CheckedCSR:
    """Verify the CSR's self-signature, its key and its names.

    Raises:
        InvalidCSR: bad signature or bad subject.
        WeakKey: key refused by policy.
        InvalidName / PolicyViolation: a requested name is malformed or not allowed.
    """
    if not csr_signature_valid(csr):
        raise InvalidCSR(
            "CSR signature does not verify: it was not signed by the key it contains",
            field="csr",
        )
    try:
        key = csr.public_key()
    except ValueError:
        raise InvalidCSR("CSR public key is not supported", field="csr") from None
    check_public_key(key, field="csr")
    return CheckedCSR(csr, key, _common_name(csr), tuple(_requested_names(csr, allow_wildcard)))


def csr_signature_valid(csr: x509.CertificateSigningRequest) -> bool:
    """Does the CSR's self-signature verify? (False for unsupported algorithms too.)"""
    try:
        return bool(csr.is_signature_valid)
    except Exception:  # unsupported signature algorithms raise from inside cryptography
        return False


def _common_name(csr: x509.CertificateSigningRequest) -> str | None:
    try:
        attrs = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    except ValueError:
        raise InvalidCSR("CSR subject cannot be decoded", field="csr") from None
    if len(attrs) > 1:
        raise InvalidCSR("CSR subject has more than one common name", field="csr")
    if not attrs:
        return None
    value = attrs[0].value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def _requested_names(
    csr: x509.CertificateSigningRequest, allow_wildcard: bool
) -> list[SubjectName]:
    try:
        ext = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    except ValueError:
        raise InvalidCSR("CSR extensions cannot be decoded", field="csr") from None
    return from_general_names(ext.value, allow_wildcard=allow_wildcard)
