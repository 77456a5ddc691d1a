"""Build CA certificates and intermediate CSRs: root, intermediates, offline signing."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificateIssuerPublicKeyTypes,
)
from cryptography.x509.oid import NameOID

from pkiforge.ca.signing import SigningCA, sign_certificate
from pkiforge.clock import utc
from pkiforge.errors import IntegrityError, InvalidInput, PolicyViolation
from pkiforge.x509.extensions import DistributionURLs, add_ca_extensions
from pkiforge.x509.keys import check_public_key, signature_hash

_CA_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
ROOT_NAME = "root"
# a rotated intermediate's successors are `<name>.2`, `<name>.3` ...: the suffix is outside
# what `validate_ca_name` accepts, so no CA an operator names can take a successor's name
_GENERATION = re.compile(
    r"^(?P<base>[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)\.(?P<n>[1-9][0-9]{0,5})$"
)
_RESERVED = frozenset({"bundle"})  # routes beside /api/v1/ca/{name}
MAX_CA_RECORD_NAME = 63  # the `cas.name` column


def lineage(name: str) -> tuple[str, int]:
    """The CA name an intermediate was created under and its generation (1 for the first)."""
    match = _GENERATION.match(name)
    if match is None:
        return name, 1
    return match["base"], int(match["n"])


def generation_name(base: str, generation: int) -> str:
    """The record name of generation `generation` of CA `base`."""
    return base if generation == 1 else f"{base}.{generation}"


def validate_ca_name(name: str) -> str:
    """CA names are short DNS-label-like words: `services`, `infrastructure`, `agents`.

    Raises:
        InvalidInput: malformed name.
    """
    if name in _RESERVED:
        raise InvalidInput(
            f"CA name {name!r} is reserved: /api/v1/ca/{name} is another resource", field="name"
        )
    if not _CA_NAME.match(name):
        raise InvalidInput(
            f"CA name {name!r} is invalid: use lower-case letters, digits and hyphens "
            "(1-63 characters)",
            field="name",
        )
    return name


def ca_subject(organization: str, name: str, *, root: bool) -> x509.Name:
    """`CN=<org> Root CA` or `CN=<org> <name> CA`, `O=<org>`."""
    cn = f"{organization} Root CA" if root else f"{organization} {name} CA"
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, cn[:64]),
        ]
    )


@dataclass(frozen=True)
class CAValidity:
    """When a CA certificate starts and ends."""

    not_before: dt.datetime
    not_after: dt.datetime

    @classmethod
    def starting(
        cls,
        now: dt.datetime,
        length: dt.timedelta,
        backdate: dt.timedelta,
        cap: dt.datetime | None = None,
    ) -> CAValidity:
        """From now (backdated) for `length`, never beyond `cap` (the issuer's notAfter)."""
        start = utc(now).replace(microsecond=0)
        if cap is not None and length >= utc(cap) - start:
            end = utc(cap)
        else:
            try:
                end = start + length
            except OverflowError:
                raise PolicyViolation(
                    f"a validity of {length.days} days ends after the year 9999",
                    field="validity",
                ) from None
        if end <= start:
            raise PolicyViolation("the issuing CA has expired", field="issuer")
        return cls(start - backdate, end)


def build_root(
    key: CertificateIssuerPrivateKeyTypes,
    subject: x509.Name,
    *,
    serial: int,
    validity: CAValidity,
    path_length: int | None = 1,
) -> x509.Certificate:
    """A self-signed root CA certificate."""
    public = key.public_key()
    builder = _base(subject, subject, public, serial, validity)
    builder = add_ca_extensions(
        builder, public_key=public, issuer=None, path_length=path_length, urls=DistributionURLs()
    )
    return sign_certificate(key, builder)


def build_intermediate(
    public_key: CertificateIssuerPublicKeyTypes,
    subject: x509.Name,
    *,
    serial: int,
    validity: CAValidity,
    issuer: SigningCA,
    urls: DistributionURLs,
    path_length: int = 0,
) -> x509.Certificate:
    """An intermediate CA certificate signed by `issuer` (normally the root)."""
    check_public_key(public_key)
    builder = _base(subject, issuer.certificate.subject, public_key, serial, validity)
    builder = add_ca_extensions(
        builder,
        public_key=public_key,
        issuer=issuer.certificate,
        path_length=path_length,
        urls=urls,
    )
    return issuer.sign_certificate(builder)


def build_intermediate_csr(
    key: CertificateIssuerPrivateKeyTypes, subject: x509.Name
) -> x509.CertificateSigningRequest:
    """A CSR asking the (offline) root to certify an intermediate CA key."""
    builder = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(subject)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
    )
    return builder.sign(key, signature_hash(key.public_key()))  # type: ignore[arg-type]


def _base(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: CertificateIssuerPublicKeyTypes,
    serial: int,
    validity: CAValidity,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(serial)
        .not_valid_before(validity.not_before)
        .not_valid_after(validity.not_after)
    )


def check_ca_certificate(cert: x509.Certificate, *, expect_root: bool) -> None:
    """Refuse a certificate that is not a usable CA certificate.

    Raises:
        InvalidInput: not a CA, no SKI, wrong self-signature, or wrong kind.
    """
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    except x509.ExtensionNotFound as exc:
        raise InvalidInput(
            f"not a CA certificate: {exc.oid._name} missing", field="certificate"
        ) from None
    if not bc.ca:
        raise InvalidInput(
            "not a CA certificate: basicConstraints cA is false", field="certificate"
        )
    self_signed = cert.issuer == cert.subject
    if expect_root and not self_signed:
        raise InvalidInput("a root CA certificate must be self-signed", field="certificate")
    if self_signed:
        check_signed_by(cert, cert)


def check_signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> None:
    """Verify that `issuer` signed `cert`.

    Raises:
        IntegrityError: the signature or the names do not match.
    """
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise IntegrityError(
            f"certificate {cert.subject.rfc4514_string()} was not issued by "
            f"{issuer.subject.rfc4514_string()}: {exc}"
        ) from None


def keys_match(cert: x509.Certificate, key: CertificateIssuerPrivateKeyTypes) -> bool:
    """Does the private key belong to the certificate?"""
    return cert.public_key() == key.public_key()
