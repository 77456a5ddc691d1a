"""The standard jobs over a real PKI, time from the FixedClock: CRLs replaced before their
nextUpdate, the expiry scan's findings, and tidy (expired certificates off the CRL, then
archived out of the inventory, audited)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from pkiforge.ca.hierarchy import InitOptions
from pkiforge.ca.models import CertificateQuery, CertificateRecord, CertStatus
from pkiforge.clock import FixedClock
from pkiforge.scheduler.core import Outcome, Scheduler
from pkiforge.scheduler.jobs import CRL_REFRESH, EXPIRY_SCAN, OCSP_REFRESH, TIDY
from pkiforge.settings import RotationPolicySettings, SchedulerSettings
from pkiforge.wiring import Pki, build_scheduler
from tests.ca.helpers import NOW, csr_bytes, make_pki

DAY = dt.timedelta(days=1)


def issue(pki: Pki, key: str = "p256", **kwargs: Any) -> CertificateRecord:
    kwargs.setdefault("service_id", "web")
    return pki.certificates.issue(pki.certificates.request_from_csr(csr_bytes(key), **kwargs))


def scheduler_of(pki: Pki, **settings: Any) -> Scheduler:
    policy = settings.pop("rotation_policy", RotationPolicySettings())
    configured = pki.settings.model_copy(
        update={"scheduler": SchedulerSettings(**settings), "rotation_policy": policy}
    )
    return build_scheduler(configured, pki)


def run(scheduler: Scheduler, job: str) -> dict[str, Any]:
    report = scheduler.run_due([job])[0]
    assert report.outcome is Outcome.RAN, report
    return dict(report.result)


def audit_actions(pki: Pki, action: str) -> list[Any]:
    with pki.store.transaction(readonly=True) as tx:
        return tx.audit.recent(100, action=action)


def crl_serials(pki: Pki, issuer: str = "services") -> set[int]:
    crl = x509.load_der_x509_crl(pki.revocation.latest_crl(issuer).der)
    return {entry.serial_number for entry in crl}


# --- CRL refresh ---------------------------------------------------------------------------


def test_crl_refresh_signs_each_issuer_half_way_to_next_update(pki: Pki, clock: FixedClock) -> None:
    scheduler = scheduler_of(pki, crl_interval=dt.timedelta(minutes=1))
    first = run(scheduler, CRL_REFRESH)
    assert sorted(first["crls_signed"]) == ["root", "services"]  # none existed
    numbers = {ca: pki.revocation.latest_crl(ca).number for ca in ("root", "services")}
    assert pki.revocation.latest_crl("root").next_update == NOW + 180 * DAY  # crl.root_next_update
    clock.advance(dt.timedelta(hours=11, minutes=59))  # crl.next_update 24 h: due at 12 h
    assert run(scheduler, CRL_REFRESH)["crls_signed"] == []
    clock.advance(dt.timedelta(minutes=1))
    assert run(scheduler, CRL_REFRESH)["crls_signed"] == ["services"]
    latest = pki.revocation.latest_crl("services")
    assert latest.number == numbers["services"] + 1
    assert latest.next_update == NOW + dt.timedelta(hours=12) + DAY
    clock.advance(90 * DAY - dt.timedelta(hours=12))  # the root's: half-way to 180 days
    assert sorted(run(scheduler, CRL_REFRESH)["crls_signed"]) == ["root", "services"]
    root = pki.revocation.latest_crl("root")
    assert root.number == numbers["root"] + 1
    assert root.next_update == NOW + 90 * DAY + 180 * DAY
    signed = [e for e in audit_actions(pki, "crl.generate") if e.actor == "system:pkiforge"]
    assert len(signed) == 5


def test_crl_refresh_lists_a_revocation_nobody_asked_for(pki: Pki, clock: FixedClock) -> None:
    scheduler = scheduler_of(pki, crl_interval=dt.timedelta(seconds=5))
    run(scheduler, CRL_REFRESH)
    cert = issue(pki)
    pki.revocation.revoke(cert.serial, x509.ReasonFlags.key_compromise)
    clock.advance(dt.timedelta(seconds=5))  # past crl.rebuild_delay (1 s) and within (3 s)
    assert run(scheduler, CRL_REFRESH)["crls_signed"] == ["services"]
    assert cert.serial in crl_serials(pki)


def test_crl_refresh_and_tidy_keep_a_rotated_intermediates_crl(pki: Pki, clock: FixedClock) -> None:
    """After a rotation the predecessor still answers for what it issued: its CRL is kept
    fresh and tidied like any issuer's (docs/operations.md#rotating-an-intermediate)."""
    scheduler = scheduler_of(pki, crl_interval=dt.timedelta(seconds=5))
    old = issue(pki, validity=dt.timedelta(hours=1))
    pki.rotation.rotate("services")
    pki.revocation.revoke(old.serial, x509.ReasonFlags.key_compromise)
    clock.advance(dt.timedelta(seconds=5))
    signed = run(scheduler, CRL_REFRESH)["crls_signed"]
    assert sorted(signed) == ["root", "services", "services.2"]
    assert old.serial in crl_serials(pki, "services")
    clock.advance(dt.timedelta(hours=2))  # the old leaf expired: off the predecessor's CRL
    assert "services" in run(scheduler, TIDY)["crls_signed"]
    assert old.serial not in crl_serials(pki, "services")


def test_crl_refresh_names_an_offline_root_and_when_its_crl_lapses(tmp_path: Path) -> None:
    offline = tmp_path / "usb" / "root-key.pem"
    pki = make_pki(
        tmp_path / "home",
        clock=FixedClock(NOW),
        options=InitOptions(root_key_location=offline.as_posix()),
    )
    try:
        scheduler = scheduler_of(pki)
        result = run(scheduler, CRL_REFRESH)
        assert result == {"crls_signed": ["services"], "offline_next_update": {"root": None}}
        root_crl = pki.revocation.generate_crl("root", key_ref=f"file:{offline}")
        result = scheduler.run_due([CRL_REFRESH], force=True)[0].result
        assert result["offline_next_update"] == {"root": root_crl.next_update.isoformat()}
    finally:
        pki.close()


# --- expiry scan ---------------------------------------------------------------------------


def test_expiry_scan_finds_thresholds_and_overdue_certificates(pki: Pki, clock: FixedClock) -> None:
    soon = issue(pki, validity=40 * DAY, service_id="web")
    later = issue(pki, "p256-b", validity=60 * DAY, service_id="api")
    renewed = issue(pki, validity=40 * DAY, service_id="web")
    clock.advance(10 * DAY)
    pki.certificates.renew(renewed.serial)  # its successor lives 40 days from now
    clock.advance(dt.timedelta(days=3, hours=12))  # soon: 26.5 days left; later: 46.5
    policy = RotationPolicySettings(renew_before_expiry_days=20, notification_days=[30, 7, 1])
    scheduler = scheduler_of(pki, rotation_policy=policy)
    result = run(scheduler, EXPIRY_SCAN)
    assert result["found"] == 1 and result["renewed"] == 1
    assert result["within_days"] == {"30": 1}
    assert result["overdue"] == 0
    clock.advance(7 * DAY)  # soon: 19.5 days left, past renew_before (20)
    state = scheduler.leases.state(EXPIRY_SCAN)
    assert state is not None and state.last_run_at is not None
    clock.advance(dt.timedelta(hours=6))  # rotation_policy.check_interval_hours
    result = run(scheduler, EXPIRY_SCAN)
    assert result["overdue"] == 1 and result["overdue_by_service"] == {"web": 1}
    assert result["overdue_serials"] == [soon.serial_hex]
    clock.advance(13 * DAY)  # soon: 6.25 days left; the renewal 16.25, later 26.25
    result = scheduler.run_due([EXPIRY_SCAN], force=True)[0].result
    assert result["within_days"] == {"30": 2, "7": 1}
    assert result["overdue"] == 2 and later.serial_hex not in result["overdue_serials"]
    # per service and window, renewed certificates left out (the metrics' expiring gauge)
    assert result["expiring_by_service"] == {"api": {"30d": 1}, "web": {"30d": 2, "7d": 1}}


def test_expiry_scan_hands_each_finding_to_its_observers(pki: Pki, clock: FixedClock) -> None:
    """A certificate 31 days from expiry: outside the scan, then within 30, 7 and 1 days."""
    from pkiforge.ca.expiry_scan import ExpiryPolicy, ExpiryReport, ExpiryScan

    cert = issue(pki, validity=31 * DAY, service_id="web")
    seen: list[ExpiryReport] = []
    scan = ExpiryScan(pki.ctx, ExpiryPolicy(30 * DAY, (30, 7, 1)), observers=[seen.append])
    found: list[tuple[int | None, int, bool]] = []
    for day in (0, 1, 23, 24, 30):
        clock.advance(NOW + day * DAY - clock.now())
        report = scan.scan()
        found += [(f.threshold, f.days_left, f.overdue) for f in report.findings]
        assert all(f.certificate.serial == cert.serial for f in report.findings)
    assert found == [(30, 30, True), (30, 8, True), (7, 7, True), (1, 1, True)]
    assert len(seen) == 5


# --- tidy ----------------------------------------------------------------------------------


def test_tidy_takes_expired_certificates_off_the_crl(pki: Pki, clock: FixedClock) -> None:
    short = issue(pki, validity=2 * DAY)
    long = issue(pki, "p256-b", validity=60 * DAY)
    for cert in (short, long):
        pki.revocation.revoke(cert.serial, x509.ReasonFlags.superseded)
    pki.revocation.generate_crl("services")
    assert crl_serials(pki) == {short.serial, long.serial}
    scheduler = scheduler_of(pki)
    assert run(scheduler, TIDY)["crls_signed"] == []  # nothing on it has expired
    clock.advance(3 * DAY)
    assert run(scheduler, TIDY)["crls_signed"] == ["services"]
    assert crl_serials(pki) == {long.serial}


def test_tidy_archives_after_the_retention_and_audits_it(pki: Pki, clock: FixedClock) -> None:
    pki.revocation.ocsp = None  # no OCSP answer signed: its 7-day responder would expire too
    old = issue(pki, validity=10 * DAY)
    revoked = issue(pki, "p256-b", validity=10 * DAY)
    pki.revocation.revoke(revoked.serial, x509.ReasonFlags.key_compromise)
    young = issue(pki, validity=30 * DAY)
    scheduler = scheduler_of(pki, archive_after=dt.timedelta(days=5))
    clock.advance(14 * DAY)  # old and revoked expired 4 days ago: within the retention
    assert run(scheduler, TIDY)["archived"] == 0
    clock.advance(DAY + dt.timedelta(seconds=1))
    assert run(scheduler, TIDY)["archived"] == 2
    every = CertificateQuery(now=clock.now(), limit=1000)
    listed = {r.serial for r in pki.certificates.search(every)}
    assert old.serial not in listed and revoked.serial not in listed and young.serial in listed
    archived = {r.serial for r in pki.certificates.search(
        CertificateQuery(now=clock.now(), include_archived=True, limit=1000)
    )}  # fmt: skip
    assert {old.serial, revoked.serial, young.serial} <= archived
    expired = CertificateQuery(status=CertStatus.EXPIRED, now=clock.now())
    assert pki.certificates.count(expired) == 0
    # still known by serial (OCSP, cert show), and the issuance stays in the audit chain
    assert pki.certificates.get(old.serial).serial == old.serial
    assert pki.revocation.is_revoked(revoked.serial).status is CertStatus.REVOKED
    entries = audit_actions(pki, "cert.archive")
    assert len(entries) == 1 and entries[0].details["count"] == 2
    assert entries[0].actor == "system:pkiforge"
    issued = {e.subject for e in audit_actions(pki, "cert.issue")}
    assert old.serial_hex in issued
    # the archived revocation is on no CRL, and a new one is built without reading it
    assert revoked.serial not in crl_serials(pki) if _has_crl(pki) else True
    assert revoked.serial not in {r.serial for r in _revoked(pki)}
    clock.advance(DAY)
    scheduler.run_due([TIDY], force=True)
    assert len(audit_actions(pki, "cert.archive")) == 1  # nothing more to archive: no entry


def _has_crl(pki: Pki) -> bool:
    with pki.store.transaction(readonly=True) as tx:
        return tx.crls.latest("services") is not None


def _revoked(pki: Pki) -> list[CertificateRecord]:
    with pki.store.transaction(readonly=True) as tx:
        return tx.certificates.revoked("services")


def test_tidy_archives_in_batches_each_audited(
    pki: Pki, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pkiforge.ca import tidy

    monkeypatch.setattr(tidy, "BATCH", 2)
    certs = [issue(pki, validity=(1 + n % 3) * DAY) for n in range(5)]
    clock.advance(10 * DAY)
    result = run(scheduler_of(pki, archive_after=DAY), TIDY)
    assert result["archived"] == 5
    assert [e.details["count"] for e in audit_actions(pki, "cert.archive")] == [1, 2, 2]
    listed = pki.certificates.search(CertificateQuery(now=clock.now(), limit=100))
    assert not {c.serial for c in certs} & {r.serial for r in listed}


# --- OCSP refresh --------------------------------------------------------------------------


def responder_serials(pki: Pki) -> list[str]:
    return [e.details["serial"] for e in reversed(audit_actions(pki, "ocsp.responder"))]


def test_ocsp_refresh_makes_and_rotates_responders_before_they_expire(
    pki: Pki, clock: FixedClock
) -> None:
    """Each CA with its key here gets a delegated responder; a successor comes once 2/3 of
    its 7 days have passed, and answers are signed by the newest one, well before the old
    one expires."""
    scheduler = scheduler_of(pki, ocsp_interval=dt.timedelta(minutes=5))
    assert sorted(run(scheduler, OCSP_REFRESH)["responders_made"]) == ["root", "services"]
    first = responder_serials(pki)
    clock.advance(dt.timedelta(days=4))
    assert run(scheduler, OCSP_REFRESH)["responders_made"] == []
    clock.advance(dt.timedelta(days=1))  # past 2/3 of 7 days, 2 days before it expires
    assert sorted(run(scheduler, OCSP_REFRESH)["responders_made"]) == ["root", "services"]
    rotated = responder_serials(pki)
    assert rotated[:2] == first and len(rotated) == 4
    services = pki.ctx.get_ca("services")
    responder = pki.ocsp.responders.current(services)
    assert format(responder.certificate.serial_number, "x") in rotated[2:]
    assert responder.certificate.not_valid_after_utc > clock.now() + dt.timedelta(days=6)


def test_ocsp_refresh_signs_cached_answers_again_half_way(pki: Pki, clock: FixedClock) -> None:
    scheduler = scheduler_of(pki, ocsp_interval=dt.timedelta(minutes=5))
    record = issue(pki)
    assert pki.ocsp.presign("services", record.serial)
    with pki.store.transaction(readonly=True) as tx:
        before = tx.ocsp.answer("services", record.serial, "sha1")
    assert before is not None and before.status == "good"
    assert run(scheduler, OCSP_REFRESH)["answers_signed"] == 0  # not due yet
    clock.advance(dt.timedelta(minutes=31))  # past half of its hour
    assert run(scheduler, OCSP_REFRESH)["answers_signed"] == 1
    with pki.store.transaction(readonly=True) as tx:
        after = tx.ocsp.answer("services", record.serial, "sha1")
    assert after is not None and after.this_update == clock.now()
    assert after.next_update == clock.now() + dt.timedelta(hours=1)
