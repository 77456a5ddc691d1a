"""ca/notifications: events recorded with their change, delivered at least once, retried."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import get_args

import pytest
from cryptography import x509
from pydantic import ValidationError
from sqlalchemy import func, select

from pkiforge.ca.events import DeliveryStatus, Event, EventType
from pkiforge.ca.hierarchy import InitOptions
from pkiforge.ca.models import CertificateRecord
from pkiforge.ca.notifications import DeliveryFailed, RetryPolicy
from pkiforge.clock import FixedClock
from pkiforge.errors import Conflict
from pkiforge.scheduler.core import Job, JobContext, Scheduler
from pkiforge.scheduler.jobs import EXPIRY_SCAN
from pkiforge.settings import EventName, NotificationSettings, WebhookSettings
from pkiforge.store.scheduler_repos import SqlLeaseStore
from pkiforge.store.tables import DeliveryRow, EventRow
from pkiforge.wiring import Pki, _job_failed, build_pki, build_scheduler

from .helpers import NOW, PASSPHRASE, csr_bytes, make_settings

SECRET = "whsec_" + "A" * 44
HOUR = dt.timedelta(hours=1)


def _pki(home: Path, clock: FixedClock, hooks: list[WebhookSettings]) -> Pki:
    home.mkdir(parents=True, exist_ok=True)
    settings = make_settings(home).model_copy(
        update={"notifications": NotificationSettings(webhooks=hooks)}
    )
    pki = build_pki(settings, PASSPHRASE, clock)
    pki.hierarchy.initialize(InitOptions())
    return pki


def _hook(name: str, events: list[str] | None = None) -> WebhookSettings:
    return WebhookSettings.model_validate(
        {"name": name, "url": f"http://127.0.0.1:9/{name}", "secret": SECRET, "events": events}
    )


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def pki(tmp_path: Path, clock: FixedClock) -> Iterator[Pki]:
    made = _pki(tmp_path / "home", clock, [_hook("ops"), _hook("audit", ["certificate.renewed"])])
    yield made
    made.close()


def issue(pki: Pki) -> CertificateRecord:
    request = pki.certificates.request_from_csr(csr_bytes("p256"), service_id="web")
    return pki.certificates.issue(request)


def counts(pki: Pki) -> tuple[int, int]:
    with pki.store.engine.connect() as conn:
        events = conn.execute(select(func.count()).select_from(EventRow)).scalar_one()
        deliveries = conn.execute(select(func.count()).select_from(DeliveryRow)).scalar_one()
    return events, deliveries


class Recorder:
    """A `Sender` that records what it was given and fails while `failing` says so."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Event]] = []
        self.failing: str | None = None

    def send(self, endpoint: str, event: Event) -> None:
        if self.failing is not None:
            raise DeliveryFailed(self.failing)
        self.sent.append((endpoint, event))


def test_a_revocation_records_its_event_for_each_subscriber_that_wants_it(pki: Pki) -> None:
    record = issue(pki)
    assert counts(pki) == (0, 0)  # an issuance is no event
    pki.revocation.revoke(record.serial, x509.ReasonFlags.key_compromise)
    [delivery] = pki.notifications.list()
    assert delivery.endpoint == "ops"  # "audit" wants renewals only
    assert delivery.status is DeliveryStatus.PENDING
    event = delivery.event
    assert event.type is EventType.CERTIFICATE_REVOKED and event.service_id == "web"
    assert event.data["serial"] == record.serial_hex
    assert event.data["reason"] == "keyCompromise"
    assert event.data["names"] == list(record.names)
    assert event.data["days_left"] == (record.not_after - NOW).days  # type: ignore[operator]
    assert "request a new one" in event.data["action"]


def test_a_renewal_is_one_renewed_event_per_subscriber_and_no_revoked_one(pki: Pki) -> None:
    record = issue(pki)
    renewed = pki.certificates.renew(record.serial)
    deliveries = pki.notifications.list()
    assert sorted(d.endpoint for d in deliveries) == ["audit", "ops"]
    assert {d.event.type for d in deliveries} == {EventType.CERTIFICATE_RENEWED}
    data = deliveries[0].event.data
    assert data["serial"] == renewed.serial_hex and data["renewed_from"] == record.serial_hex


def test_a_refused_change_records_no_event(pki: Pki) -> None:
    record = issue(pki)
    pki.revocation.revoke(record.serial, x509.ReasonFlags.superseded)
    before = counts(pki)
    with pytest.raises(Conflict):
        pki.revocation.revoke(record.serial, x509.ReasonFlags.superseded)
    assert counts(pki) == before


def test_without_subscribers_nothing_is_recorded(tmp_path: Path, clock: FixedClock) -> None:
    pki = _pki(tmp_path / "bare", clock, [])
    try:
        pki.revocation.revoke(issue(pki).serial, x509.ReasonFlags.superseded)
        assert counts(pki) == (0, 0)
    finally:
        pki.close()


def test_delivered_once_then_never_again(pki: Pki) -> None:
    pki.revocation.revoke(issue(pki).serial, x509.ReasonFlags.superseded)
    sender = Recorder()
    report = pki.notifications.deliver_due(sender)
    assert (report.delivered, report.retrying, report.failed) == (1, 0, 0)
    assert [endpoint for endpoint, _ in sender.sent] == ["ops"]
    assert pki.notifications.deliver_due(sender).attempted == 0
    [delivery] = pki.notifications.list(DeliveryStatus.DELIVERED)
    assert delivery.attempts == 1 and delivery.delivered_at == NOW


def test_failures_are_retried_with_doubling_delays_then_given_up(
    pki: Pki, clock: FixedClock
) -> None:
    pki.revocation.revoke(issue(pki).serial, x509.ReasonFlags.superseded)
    sender = Recorder()
    sender.failing = "answered HTTP 503"
    waits = []
    for _ in range(4):  # the first attempt and max_retries (3) retries
        report = pki.notifications.deliver_due(sender)
        assert report.attempted == 1, report
        [delivery] = pki.notifications.list()
        if delivery.status is DeliveryStatus.PENDING:
            assert delivery.next_attempt_at is not None
            waits.append(delivery.next_attempt_at - clock.now())
            assert pki.notifications.deliver_due(sender).attempted == 0  # not due yet
            clock.advance(delivery.next_attempt_at - clock.now())
    assert waits == [HOUR, 2 * HOUR, 4 * HOUR]
    [delivery] = pki.notifications.list()
    assert delivery.status is DeliveryStatus.FAILED and delivery.attempts == 4
    assert delivery.last_error == "answered HTTP 503"
    assert report.failed == 1

    sender.failing = None
    assert pki.notifications.retry_failed() == 1
    assert pki.notifications.deliver_due(sender).delivered == 1
    assert pki.notifications.list()[0].status is DeliveryStatus.DELIVERED


def test_a_delivery_being_sent_is_held_from_others_until_its_hold_ends(
    pki: Pki, clock: FixedClock
) -> None:
    """A deliverer killed between taking a delivery and recording it: after the hold, another
    takes it again (at least once; receivers deduplicate on the event id)."""
    pki.revocation.revoke(issue(pki).serial, x509.ReasonFlags.superseded)
    hold = pki.notifications.retry.hold
    with pki.store.transaction() as tx:
        [taken] = tx.outbox.claim_due(clock.now(), clock.now() + hold, 10)
    # the taker dies here; a second deliverer finds nothing until the hold ends
    sender = Recorder()
    assert pki.notifications.deliver_due(sender).attempted == 0
    clock.advance(hold)
    assert pki.notifications.deliver_due(sender).delivered == 1
    assert sender.sent[0][1].event_id == taken.event.event_id


def test_retry_names_ids_and_leaves_other_deliveries_alone(pki: Pki) -> None:
    for _ in range(2):
        pki.revocation.revoke(issue(pki).serial, x509.ReasonFlags.superseded)
    sender = Recorder()
    sender.failing = "timed out"
    pki.notifications.retry = RetryPolicy(max_retries=0)
    assert pki.notifications.deliver_due(sender).failed == 2
    first, second = sorted(d.delivery_id for d in pki.notifications.list())
    assert pki.notifications.retry_failed([first]) == 1
    statuses = {d.delivery_id: d.status for d in pki.notifications.list()}
    assert statuses == {first: DeliveryStatus.PENDING, second: DeliveryStatus.FAILED}


def test_the_settings_offer_every_event_type() -> None:
    assert set(get_args(EventName)) == {t.value for t in EventType}


@pytest.mark.parametrize(
    ("values", "says"),
    [
        ({"name": "ops", "url": "http://x/"}, "exactly one of `secret` and `secret_file`"),
        (
            {"name": "ops", "url": "http://x/", "secret": SECRET, "secret_file": "f"},
            "exactly one of",
        ),
        ({"name": "ops", "url": "ftp://x/", "secret": SECRET}, "url"),
        ({"name": "ops", "url": "http://x/", "secret": SECRET, "events": ["cert.x"]}, "events"),
    ],
    ids=["no-secret", "two-secrets", "not-http", "unknown-event"],
)
def test_a_webhook_setting_that_cannot_work_is_refused(
    values: dict[str, object], says: str
) -> None:
    with pytest.raises(ValidationError, match=says):
        WebhookSettings.model_validate(values)


def test_two_webhooks_with_one_name_are_refused() -> None:
    with pytest.raises(ValidationError, match="a name of its own"):
        NotificationSettings(webhooks=[_hook("ops"), _hook("ops")])


def test_the_expiry_scan_notifies_once_per_threshold_and_never_for_a_renewed_one(
    pki: Pki, clock: FixedClock
) -> None:
    request = pki.certificates.request_from_csr(
        csr_bytes("p256"), service_id="web", validity=dt.timedelta(days=31)
    )
    expiring = pki.certificates.issue(request)
    renewed = pki.certificates.issue(request)
    # superseded by a successor that has longer: nothing is due for either
    pki.certificates.renew(renewed.serial, validity=dt.timedelta(days=90))
    scheduler = build_scheduler(pki.settings, pki)

    def scan() -> list[int]:
        scheduler.run_due(only=[EXPIRY_SCAN], force=True)
        return sorted(
            d.event.data["threshold_days"]
            for d in pki.notifications.list()
            if d.event.type is EventType.CERTIFICATE_EXPIRING
        )

    assert scan() == []  # 31 days left: within no threshold yet
    clock.advance(dt.timedelta(days=2))  # 29 days left
    assert scan() == [30]
    assert scan() == [30]  # the same threshold again: no second event
    clock.advance(dt.timedelta(days=25))  # 4 days left: past 7
    assert scan() == [7, 30]
    clock.advance(dt.timedelta(days=3, hours=12))  # half a day left
    assert scan() == [1, 7, 30]
    events = [d.event for d in pki.notifications.list() if d.endpoint == "ops"]
    expiring_events = [e for e in events if e.type is EventType.CERTIFICATE_EXPIRING]
    assert {e.data["serial"] for e in expiring_events} == {expiring.serial_hex}
    assert all("renew" in e.data["action"] for e in expiring_events)


def test_a_failed_job_is_a_scheduler_failed_event(pki: Pki) -> None:
    def broken(_: JobContext) -> dict[str, object]:
        raise RuntimeError("the disk is on fire")

    scheduler = Scheduler(
        [Job("broken", dt.timedelta(hours=1), broken)],
        SqlLeaseStore(pki.store),
        pki.ctx.clock,
        on_failure=partial(_job_failed, pki),
    )
    [report] = scheduler.run_due(force=True)
    assert report.error is not None
    [delivery] = pki.notifications.list()
    assert delivery.event.type is EventType.SCHEDULER_FAILED
    assert delivery.event.data["job"] == "broken"
    assert "the disk is on fire" in delivery.event.data["error"]


def test_a_rotation_is_a_ca_rotated_event(pki: Pki) -> None:
    rotated = pki.rotation.rotate("services")
    [delivery] = pki.notifications.list()
    event = delivery.event
    assert event.type is EventType.CA_ROTATED and delivery.endpoint == "ops"
    assert event.data["ca"] == "services"
    assert event.data["predecessor"] == ["services"]
    assert event.data["successor"] == rotated.successor.name


def test_the_outbox_gauges_count_deliveries_by_status_and_age_the_oldest_pending(
    pki: Pki, clock: FixedClock
) -> None:
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from pkiforge.api.notification_metrics import NotificationCollector

    def scrape() -> dict[str, float]:
        registry = CollectorRegistry()
        registry.register(NotificationCollector(pki.notifications.stats))
        text = generate_latest(registry).decode()
        return {
            s.labels.get("status", s.name): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    oldest = "pkiforge_notification_oldest_pending_timestamp_seconds"
    first = issue(pki)
    pki.revocation.revoke(first.serial, x509.ReasonFlags.superseded)  # at NOW: pending
    clock.advance(HOUR)
    pki.certificates.renew(issue(pki).serial)  # two more, one per subscriber
    assert scrape() == {"pending": 3, "delivered": 0, "failed": 0, oldest: NOW.timestamp()}

    with pki.store.transaction() as tx:  # the revocation's delivery has no retry left
        [revoked] = [d for d in tx.outbox.list() if d.event.type is EventType.CERTIFICATE_REVOKED]
        tx.outbox.attempt_failed(revoked.delivery_id, 4, "answered HTTP 503", None)
    after = (NOW + HOUR).timestamp()
    assert scrape() == {"pending": 2, "delivered": 0, "failed": 1, oldest: after}

    assert pki.notifications.deliver_due(Recorder()).delivered == 2
    assert scrape() == {"pending": 0, "delivered": 2, "failed": 1}  # none waits: no age
