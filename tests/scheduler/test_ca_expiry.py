"""The ca-expiry job and the CA gauges, time from the FixedClock: an intermediate nearing its
notAfter is logged, notified once per threshold (`ca.expiring`) and shown in days left; a CA
key that cannot be loaded shows as unavailable."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pkiforge.api.ca_metrics import CACollector
from pkiforge.ca.events import EventType
from pkiforge.clock import FixedClock
from pkiforge.scheduler.core import Outcome
from pkiforge.scheduler.jobs import CA_EXPIRY
from pkiforge.wiring import Pki, build_scheduler
from tests.ca.helpers import NOW, make_pki
from tests.ca.test_notifications import _hook, _pki

DAY = dt.timedelta(days=1)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def pki(tmp_path: Path, clock: FixedClock) -> Iterator[Pki]:
    made = _pki(tmp_path / "home", clock, [_hook("ops")])
    yield made
    made.close()


def gauges(pki: Pki) -> dict[tuple[str, str], float]:
    """(metric, ca) -> value of the CA gauges, as a scrape shows them."""
    registry = CollectorRegistry()
    registry.register(CACollector(pki.ctx, 365, pki.ctx.key_health.state))
    text = generate_latest(registry).decode()
    return {
        (s.name, s.labels.get("ca", "")): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def ca_events(pki: Pki) -> list[tuple[str, int]]:
    return sorted(
        (d.event.data["ca"], d.event.data["threshold_days"])
        for d in pki.notifications.list()
        if d.event.type is EventType.CA_EXPIRING
    )


def test_an_intermediate_near_its_end_is_warned_of_once_per_threshold(
    pki: Pki, clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    scheduler = build_scheduler(pki.settings, pki)
    services = pki.hierarchy.get("services").certificate
    root = pki.hierarchy.get("root").certificate
    assert services is not None and root is not None
    end = services.not_valid_after_utc

    def check() -> dict[str, object]:
        [report] = scheduler.run_due(only=[CA_EXPIRY], force=True)
        assert report.outcome is Outcome.RAN, report
        return dict(report.result)

    with pki.store.transaction(readonly=True) as tx:
        audited = len(tx.audit.recent(1000))
    clock.advance(end - 366 * DAY - clock.now())
    result = check()
    assert result["warned"] == [] and ca_events(pki) == []
    assert result["days_left"] == {"root": (root.not_valid_after_utc - clock.now()) // DAY,
                                   "services": 366}  # fmt: skip
    assert gauges(pki)[("pkiforge_ca_days_left", "services")] == pytest.approx(366)

    clock.advance(2 * DAY)  # 364 days left: within rotation_policy.ca_warning_days (365)
    with caplog.at_level(logging.WARNING, logger="pkiforge.ca"):
        assert check()["warned"] == ["services"]
    assert "CA services (intermediate) expires in 364 days" in caplog.text
    assert ca_events(pki) == [("services", 365)]
    check()
    assert ca_events(pki) == [("services", 365)]  # the same threshold: no second event
    [event] = [d.event for d in pki.notifications.list() if d.event.type is EventType.CA_EXPIRING]
    assert event.data["serial"] == format(services.serial_number, "x")
    assert "pkiforge ca rotate services" in event.data["action"]
    assert event.data["not_after"] == end.isoformat()

    clock.advance(end - 6 * DAY - clock.now())  # past 90 and 30 and 7 in one step
    check()
    assert ca_events(pki) == [("services", 7), ("services", 365)]
    assert gauges(pki)[("pkiforge_ca_days_left", "services")] == pytest.approx(6)
    with pki.store.transaction(readonly=True) as tx:
        assert len(tx.audit.recent(1000)) == audited  # nothing in the CA changed


def test_a_key_that_cannot_be_loaded_shows_as_unavailable(tmp_path: Path) -> None:
    home = tmp_path / "home"
    good = make_pki(home)
    try:
        assert gauges(good).get(("pkiforge_ca_key_available", "services")) is None  # not tried
        assert good.ctx.check_keys() == {"root": True, "services": True}
        assert gauges(good)[("pkiforge_ca_key_available", "services")] == 1
    finally:
        good.close()
    wrong = make_pki(home, passphrase=b"not-the-passphrase-000000", init=False)
    try:
        assert wrong.ctx.check_keys() == {"root": False, "services": False}
        values = gauges(wrong)
        assert values[("pkiforge_ca_key_available", "root")] == 0
        assert values[("pkiforge_ca_key_available", "services")] == 0
    finally:
        wrong.close()
