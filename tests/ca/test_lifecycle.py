"""Renew, revoke and CRLs."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from pkiforge.ca.crl import parse_reason, reason_name
from pkiforge.ca.models import CertificateRecord, CertStatus
from pkiforge.clock import FixedClock
from pkiforge.errors import Conflict, InvalidInput, NotFound, PolicyViolation
from pkiforge.wiring import Pki

from .helpers import NOW, csr_bytes, leaf_key, snapshot

DAY = dt.timedelta(days=1)
R = x509.ReasonFlags


def issue(pki: Pki, key: str = "p256", **kwargs: object) -> CertificateRecord:
    kwargs.setdefault("service_id", "web")
    return pki.certificates.issue(pki.certificates.request_from_csr(csr_bytes(key), **kwargs))  # type: ignore[arg-type]


def crl_of(pki: Pki, issuer: str = "services") -> x509.CertificateRevocationList:
    return x509.load_der_x509_crl(pki.revocation.generate_crl(issuer).der)


# --- renew -------------------------------------------------------------------------------


def test_renew_keeps_key_names_profile_and_lifetime(pki: Pki, clock: FixedClock) -> None:
    old = issue(pki, profile="server", validity=30 * DAY)
    clock.advance(20 * DAY)
    new = pki.certificates.renew(old.serial)
    assert new.serial != old.serial
    assert new.renewed_from == old.serial
    assert new.names == old.names
    assert (new.profile, new.service_id, new.issuer) == ("server", "web", "services")
    assert old.certificate is not None and new.certificate is not None
    assert new.certificate.public_key() == old.certificate.public_key()
    assert new.certificate.not_valid_after_utc == NOW + 20 * DAY + 30 * DAY
    assert pki.certificates.get(new.serial).renewed_from == old.serial
    with pki.store.transaction() as tx:
        audit = tx.audit.recent(1, action="cert.renew")
    assert audit[0].details["renewed_from"] == old.serial_hex


def test_renew_with_a_new_csr_takes_its_key(pki: Pki) -> None:
    old = issue(pki)
    new = pki.certificates.renew(old.serial, csr_data=csr_bytes("p256-b"))
    assert new.certificate is not None
    assert new.certificate.public_key() == leaf_key("p256-b").public_key()
    assert new.names == old.names


def test_renew_refuses_new_names(pki: Pki) -> None:
    old = issue(pki)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "web.example.internal")]))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("admin.example.internal")]), critical=False
        )
        .sign(leaf_key("p256-b"), hashes.SHA256())
        .public_bytes(Encoding.PEM)
    )
    before = snapshot(pki)
    with pytest.raises(PolicyViolation) as info:
        pki.certificates.renew(old.serial, csr_data=csr)
    assert info.value.field == "csr"
    assert "DNS:admin.example.internal is new" in str(info.value)
    assert snapshot(pki) == before


def test_renew_refuses_a_revoked_certificate(pki: Pki) -> None:
    old = issue(pki)
    pki.revocation.revoke(old.serial, R.superseded)
    before = snapshot(pki)
    with pytest.raises(Conflict, match="is revoked; only an active certificate") as info:
        pki.certificates.renew(old.serial)
    assert info.value.data["field"] == "serial"
    assert snapshot(pki) == before


def test_renew_unknown_serial(pki: Pki) -> None:
    with pytest.raises(NotFound, match="no certificate with serial abc"):
        pki.certificates.renew(0xABC)


def test_renew_refuses_a_weak_key_csr(pki: Pki) -> None:
    from pkiforge.errors import WeakKey

    old = issue(pki)
    before = snapshot(pki)
    with pytest.raises(WeakKey, match="1024 bits"):
        pki.certificates.renew(old.serial, csr_data=csr_bytes("rsa1024"))
    assert snapshot(pki) == before


# --- revoke ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "flag", "rfc_name"),
    [
        ("keyCompromise", R.key_compromise, "keyCompromise"),
        ("key-compromise", R.key_compromise, "keyCompromise"),
        ("key_compromise", R.key_compromise, "keyCompromise"),
        ("unspecified", R.unspecified, "unspecified"),
        ("cACompromise", R.ca_compromise, "cACompromise"),
        ("affiliationChanged", R.affiliation_changed, "affiliationChanged"),
        ("superseded", R.superseded, "superseded"),
        ("cessationOfOperation", R.cessation_of_operation, "cessationOfOperation"),
        ("privilegeWithdrawn", R.privilege_withdrawn, "privilegeWithdrawn"),
        ("aACompromise", R.aa_compromise, "aACompromise"),
        # the origin documents' vocabulary
        ("service_decommissioned", R.cessation_of_operation, "cessationOfOperation"),
        ("certificate_superseded", R.superseded, "superseded"),
        ("privilege_change", R.privilege_withdrawn, "privilegeWithdrawn"),
        ("security_policy_violation", R.privilege_withdrawn, "privilegeWithdrawn"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_reason_vocabulary(text: str, flag: x509.ReasonFlags, rfc_name: str) -> None:
    assert parse_reason(text) is flag
    assert reason_name(flag) == rfc_name


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("certificateHold", "revocation in pkiforge is final"),
        ("certificate_hold", "revocation in pkiforge is final"),
        ("removeFromCRL", "revocation in pkiforge is final"),
        ("lost-it", "unknown revocation reason 'lost-it'"),
        ("", "unknown revocation reason"),
    ],
    ids=["hold", "hold-snake", "remove-from-crl", "unknown", "empty"],
)
def test_refused_reasons(text: str, words: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_reason(text)
    assert words in str(info.value)
    assert info.value.field == "reason"


def test_revoke_records_reason_dates_and_audit(pki: Pki, clock: FixedClock) -> None:
    record = issue(pki)
    clock.advance(DAY)
    # given in +02:00: stored and read back as the same instant (SQLite drops offsets)
    invalid_since = (NOW + dt.timedelta(hours=3)).astimezone(dt.timezone(dt.timedelta(hours=2)))
    revoked = pki.revocation.revoke(record.serial, R.key_compromise, invalidity_date=invalid_since)
    assert revoked.status is CertStatus.REVOKED
    stored = pki.revocation.is_revoked(record.serial)
    assert stored.status is CertStatus.REVOKED
    assert stored.revocation is not None
    assert stored.revocation.reason is R.key_compromise
    assert stored.revocation.revoked_at == NOW + DAY
    assert stored.revocation.invalidity_date == invalid_since
    assert stored.revocation.revoked_by == "operator:cli"
    with pki.store.transaction() as tx:
        audit = tx.audit.recent(1, action="cert.revoke", subject=record.serial_hex)
    assert audit[0].details["reason"] == "keyCompromise"


def test_revoke_twice_is_a_conflict(pki: Pki) -> None:
    record = issue(pki)
    pki.revocation.revoke(record.serial, R.superseded)
    before = snapshot(pki)
    with pytest.raises(Conflict, match=r"already revoked \(superseded\)") as info:
        pki.revocation.revoke(record.serial, R.key_compromise)
    assert info.value.data["field"] == "serial"
    assert snapshot(pki) == before


def test_revoke_with_future_invalidity_date_is_refused(pki: Pki) -> None:
    record = issue(pki)
    before = snapshot(pki)
    with pytest.raises(InvalidInput, match="invalidity date is in the future") as info:
        pki.revocation.revoke(
            record.serial, R.key_compromise, invalidity_date=NOW + dt.timedelta(seconds=1)
        )
    assert info.value.field == "invalidity_date"
    assert snapshot(pki) == before


def test_revoke_unknown_serial(pki: Pki) -> None:
    before = snapshot(pki)
    with pytest.raises(NotFound, match="no certificate with serial 1234"):
        pki.revocation.revoke(0x1234, R.unspecified)
    assert snapshot(pki) == before


# --- CRLs --------------------------------------------------------------------------------


def test_crl_lists_revoked_with_reason_and_invalidity_date(pki: Pki) -> None:
    keep = issue(pki)
    gone = issue(pki)
    plain = issue(pki)
    pki.revocation.revoke(gone.serial, R.key_compromise, invalidity_date=NOW - DAY)
    pki.revocation.revoke(plain.serial, R.unspecified)
    crl = crl_of(pki)
    root = pki.hierarchy.get("services").certificate
    assert root is not None
    assert crl.is_signature_valid(root.public_key())  # type: ignore[arg-type]
    assert crl.get_revoked_certificate_by_serial_number(keep.serial) is None
    entry = crl.get_revoked_certificate_by_serial_number(gone.serial)
    assert entry is not None
    assert entry.revocation_date_utc == NOW
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason is (
        R.key_compromise
    )
    assert entry.extensions.get_extension_for_class(
        x509.InvalidityDate
    ).value.invalidity_date_utc == (NOW - DAY)
    unspecified = crl.get_revoked_certificate_by_serial_number(plain.serial)
    assert unspecified is not None
    with pytest.raises(x509.ExtensionNotFound):  # RFC 5280 §5.3.1: omit unspecified
        unspecified.extensions.get_extension_for_class(x509.CRLReason)
    assert crl.last_update_utc == NOW
    assert crl.next_update_utc == NOW + dt.timedelta(hours=24)


def test_crl_numbers_increase_and_latest_is_stored(pki: Pki, clock: FixedClock) -> None:
    numbers = []
    for _ in range(3):
        crl = crl_of(pki)
        numbers.append(crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)
        clock.advance(dt.timedelta(hours=1))
    assert numbers == [1, 2, 3]
    latest = pki.revocation.latest_crl("services")
    assert latest.number == 3
    assert latest.this_update == NOW + dt.timedelta(hours=2)
    assert pki.hierarchy.get("services").crl_number == 3
    # each CA counts on its own
    assert (
        crl_of(pki, "root").extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 1
    )


def test_crl_has_aki_of_its_issuer(pki: Pki) -> None:
    crl = crl_of(pki)
    inter = pki.hierarchy.get("services").certificate
    assert inter is not None
    ski = inter.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    aki = crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ski
    assert crl.issuer == inter.subject


def test_expired_revoked_entries_drop_off(pki: Pki, clock: FixedClock) -> None:
    short = issue(pki, validity=2 * DAY)
    long = issue(pki, validity=30 * DAY)
    pki.revocation.revoke(short.serial, R.superseded)
    pki.revocation.revoke(long.serial, R.superseded)
    first = crl_of(pki)
    assert {r.serial_number for r in first} == {short.serial, long.serial}
    clock.advance(3 * DAY)
    later = crl_of(pki)
    assert {r.serial_number for r in later} == {long.serial}


def test_latest_crl_before_any(pki: Pki) -> None:
    with pytest.raises(NotFound, match="no CRL has been generated for 'services' yet"):
        pki.revocation.latest_crl("services")
    with pytest.raises(NotFound, match="no CA named 'nope'"):
        pki.revocation.latest_crl("nope")
