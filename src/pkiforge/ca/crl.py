"""Build signed CRLs (RFC 5280 §5) and map revocation reason names."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from cryptography import x509

from pkiforge.ca.models import Revocation
from pkiforge.ca.signing import SigningCA
from pkiforge.errors import InvalidInput

# RFC 5280 §5.3.1 names, plus the origin documents' phrases
_REASONS: dict[str, x509.ReasonFlags] = {
    "unspecified": x509.ReasonFlags.unspecified,
    "keycompromise": x509.ReasonFlags.key_compromise,
    "cacompromise": x509.ReasonFlags.ca_compromise,
    "affiliationchanged": x509.ReasonFlags.affiliation_changed,
    "superseded": x509.ReasonFlags.superseded,
    "cessationofoperation": x509.ReasonFlags.cessation_of_operation,
    "privilegewithdrawn": x509.ReasonFlags.privilege_withdrawn,
    "aacompromise": x509.ReasonFlags.aa_compromise,
    # origin-document vocabulary
    "servicedecommissioned": x509.ReasonFlags.cessation_of_operation,
    "certificatesuperseded": x509.ReasonFlags.superseded,
    "privilegechange": x509.ReasonFlags.privilege_withdrawn,
    "securitypolicyviolation": x509.ReasonFlags.privilege_withdrawn,
}
REASON_NAMES = (
    "unspecified",
    "keyCompromise",
    "cACompromise",
    "affiliationChanged",
    "superseded",
    "cessationOfOperation",
    "privilegeWithdrawn",
    "aACompromise",
)
_CAMEL = {flag: name for name in REASON_NAMES for flag in [_REASONS[name.lower()]]}


def parse_reason(text: str) -> x509.ReasonFlags:
    """`keyCompromise`, `key-compromise`, `key_compromise` ... to a ReasonFlags.

    Raises:
        InvalidInput: unknown reason, or certificateHold (revocation here is final).
    """
    key = text.strip().lower().replace("-", "").replace("_", "").replace(" ", "")
    if key in ("certificatehold", "removefromcrl"):
        raise InvalidInput(
            f"reason {text!r} is not supported: revocation in pkiforge is final", field="reason"
        )
    try:
        return _REASONS[key]
    except KeyError:
        raise InvalidInput(
            f"unknown revocation reason {text!r}: use one of {', '.join(REASON_NAMES)}",
            field="reason",
        ) from None


def reason_name(reason: x509.ReasonFlags) -> str:
    """The RFC 5280 camelCase name of a reason."""
    return _CAMEL.get(reason, reason.value)


def build_crl(
    *,
    issuer: SigningCA,
    number: int,
    this_update: dt.datetime,
    next_update: dt.datetime,
    revoked: Iterable[tuple[int, Revocation]],
    delta_of: int | None = None,
) -> x509.CertificateRevocationList:
    """A v2 CRL with CRL number and AKI; entries carry reason and invalidity date. With
    `delta_of`, a delta CRL completing the full CRL of that number (RFC 5280 §5.2.4).

    The entries go to the builder in one list: `add_revoked_certificate` copies the list it
    has on each call, which makes a CRL of n entries cost n² (tests/ca/
    test_cryptography_contract.py keeps the constructor this relies on).
    """
    ski = issuer.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    own_serial = issuer.certificate.serial_number
    # a CA never lists itself: a root on its own CRL would make every verifier that checks
    # the anchor's status reject the whole hierarchy
    entries = [_entry(serial, rev) for serial, rev in revoked if serial != own_serial]
    builder = (
        x509.CertificateRevocationListBuilder(revoked_certificates=entries)
        .issuer_name(issuer.certificate.subject)
        .last_update(this_update)
        .next_update(next_update)
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
    )
    if delta_of is not None:
        # RFC 5280 §5.2.4: the delta CRL indicator is critical and names the base CRL
        builder = builder.add_extension(x509.DeltaCRLIndicator(delta_of), critical=True)
    return issuer.sign_crl(builder)


def _entry(serial: int, rev: Revocation) -> x509.RevokedCertificate:
    entry = (
        x509.RevokedCertificateBuilder()
        .serial_number(serial)
        .revocation_date(rev.revoked_at.replace(microsecond=0))
    )
    # RFC 5280 §5.3.1: the reasonCode unspecified SHOULD be absent instead
    if rev.reason is not x509.ReasonFlags.unspecified:
        entry = entry.add_extension(x509.CRLReason(rev.reason), critical=False)
    if rev.invalidity_date is not None:
        entry = entry.add_extension(
            x509.InvalidityDate(rev.invalidity_date.replace(microsecond=0, tzinfo=None)),
            critical=False,
        )
    return entry.build()
