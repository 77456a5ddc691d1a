"""X.509 extensions for CA and end-entity certificates (RFC 5280 §4.2)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPublicKeyTypes,
    CertificatePublicKeyTypes,
)
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID

from pkiforge.errors import InvalidInput
from pkiforge.x509.names import SubjectName

EKU_NAMES = {
    "serverAuth": ExtendedKeyUsageOID.SERVER_AUTH,
    "clientAuth": ExtendedKeyUsageOID.CLIENT_AUTH,
    "codeSigning": ExtendedKeyUsageOID.CODE_SIGNING,
    "emailProtection": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    "OCSPSigning": ExtendedKeyUsageOID.OCSP_SIGNING,
}


@dataclass(frozen=True)
class DistributionURLs:
    """Where to find the issuer's CRL, OCSP responder and certificate (already resolved)."""

    crl: str | None = None
    ocsp: str | None = None
    ca_issuers: str | None = None
    freshest_crl: str | None = None  # the delta CRL's URL (RFC 5280 §4.2.1.15)


def eku_oids(names: Sequence[str]) -> list[x509.ObjectIdentifier]:
    """Map EKU names to OIDs.

    Raises:
        InvalidInput: an unknown EKU name.
    """
    out = []
    for name in names:
        if name not in EKU_NAMES:
            raise InvalidInput(
                f"unknown extended key usage {name!r}: use {', '.join(EKU_NAMES)}", field="ekus"
            )
        out.append(EKU_NAMES[name])
    return out


def _key_usage(
    *, digital_signature: bool, key_encipherment: bool, cert_sign: bool
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _distribution(
    builder: x509.CertificateBuilder, urls: DistributionURLs
) -> x509.CertificateBuilder:
    if urls.crl:
        point = x509.DistributionPoint(
            full_name=[x509.UniformResourceIdentifier(urls.crl)],
            relative_name=None,
            reasons=None,
            crl_issuer=None,
        )
        builder = builder.add_extension(x509.CRLDistributionPoints([point]), critical=False)
    if urls.freshest_crl:
        # RFC 5280 §4.2.1.15: non-critical, same syntax as the CRL distribution points
        point = x509.DistributionPoint(
            full_name=[x509.UniformResourceIdentifier(urls.freshest_crl)],
            relative_name=None,
            reasons=None,
            crl_issuer=None,
        )
        builder = builder.add_extension(x509.FreshestCRL([point]), critical=False)
    access = []
    if urls.ocsp:
        access.append(
            x509.AccessDescription(
                AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(urls.ocsp)
            )
        )
    if urls.ca_issuers:
        access.append(
            x509.AccessDescription(
                AuthorityInformationAccessOID.CA_ISSUERS,
                x509.UniformResourceIdentifier(urls.ca_issuers),
            )
        )
    if access:
        builder = builder.add_extension(x509.AuthorityInformationAccess(access), critical=False)
    return builder


def _authority_key_id(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def add_leaf_extensions(
    builder: x509.CertificateBuilder,
    *,
    public_key: CertificatePublicKeyTypes,
    issuer: x509.Certificate,
    names: Sequence[SubjectName],
    ekus: Sequence[str],
    urls: DistributionURLs,
) -> x509.CertificateBuilder:
    """End-entity extensions: critical BC and KU, EKU, SKI/AKI, SAN, CRL DP, AIA."""
    rsa_tls_server = isinstance(public_key, rsa.RSAPublicKey) and "serverAuth" in ekus
    builder = (
        builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            _key_usage(digital_signature=True, key_encipherment=rsa_tls_server, cert_sign=False),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(eku_oids(ekus)), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(_authority_key_id(issuer), critical=False)
        .add_extension(
            x509.SubjectAlternativeName([n.to_general_name() for n in names]), critical=False
        )
    )
    return _distribution(builder, urls)


def add_ca_extensions(
    builder: x509.CertificateBuilder,
    *,
    public_key: CertificateIssuerPublicKeyTypes,
    issuer: x509.Certificate | None,
    path_length: int | None,
    urls: DistributionURLs,
) -> x509.CertificateBuilder:
    """CA extensions: critical BC (with pathLen) and KU (keyCertSign, cRLSign), SKI/AKI."""
    ski = x509.SubjectKeyIdentifier.from_public_key(public_key)
    aki = (
        x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
        if issuer is None
        else _authority_key_id(issuer)
    )
    builder = (
        builder.add_extension(
            x509.BasicConstraints(ca=True, path_length=path_length), critical=True
        )
        .add_extension(
            _key_usage(digital_signature=True, key_encipherment=False, cert_sign=True),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .add_extension(aki, critical=False)
    )
    return builder if issuer is None else _distribution(builder, urls)


def add_ocsp_responder_extensions(
    builder: x509.CertificateBuilder,
    *,
    public_key: CertificateIssuerPublicKeyTypes,
    issuer: x509.Certificate,
) -> x509.CertificateBuilder:
    """A delegated OCSP responder (RFC 6960 §4.2.2.2): critical BC (not a CA) and KU
    (digitalSignature), EKU id-kp-OCSPSigning, id-pkix-ocsp-nocheck (§4.2.2.2.1: relying
    parties do not check its revocation, so it is short-lived), SKI/AKI."""
    return (
        builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            _key_usage(digital_signature=True, key_encipherment=False, cert_sign=False),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
        .add_extension(x509.OCSPNoCheck(), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(_authority_key_id(issuer), critical=False)
    )
