"""Sign end-entity certificates from a policy-checked draft (no storage here)."""

from __future__ import annotations

from cryptography import x509
from cryptography.x509.oid import NameOID

from pkiforge.ca.policy import Draft
from pkiforge.ca.signing import SigningCA
from pkiforge.x509.extensions import DistributionURLs, add_leaf_extensions


def sign_leaf(
    draft: Draft,
    *,
    serial: int,
    issuer: SigningCA,
    urls: DistributionURLs,
) -> x509.Certificate:
    """Build and sign the leaf certificate described by `draft`."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, draft.common_name)]))
        .issuer_name(issuer.certificate.subject)
        .public_key(draft.public_key)
        .serial_number(serial)
        .not_valid_before(draft.not_before)
        .not_valid_after(draft.not_after)
    )
    builder = add_leaf_extensions(
        builder,
        public_key=draft.public_key,
        issuer=issuer.certificate,
        names=draft.names,
        ekus=draft.profile.ekus,
        urls=urls,
    )
    return issuer.sign_certificate(builder)
