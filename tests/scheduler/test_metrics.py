"""The scheduler's metrics come from the job rows: every replica reports the same values."""

from __future__ import annotations

import datetime as dt

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pkiforge.api.scheduler_metrics import SchedulerCollector
from pkiforge.errors import StoreUnavailable
from pkiforge.scheduler.ports import JobState

AT = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def scrape(collector: SchedulerCollector) -> str:
    registry = CollectorRegistry()
    registry.register(collector)
    return generate_latest(registry).decode()


def test_job_state_and_overdue_certificates_per_service() -> None:
    states = [
        JobState(
            "expiry-scan",
            last_run_at=AT,
            last_success_at=AT,
            last_duration=0.25,
            runs=4,
            failures=1,
            result={
                "overdue_by_service": {"web": 2, "(none)": 1},
                "expiring_by_service": {"web": {"30d": 3, "7d": 2}},
            },
        ),
        JobState("tidy", runs=0),
    ]
    text = scrape(SchedulerCollector(lambda: states, {"expiry-scan": 21600.0, "tidy": 86400.0}))
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    key = ("pkiforge_scheduler_job_last_run_timestamp_seconds", (("job", "expiry-scan"),))
    assert samples[key] == AT.timestamp()
    assert 'pkiforge_scheduler_job_duration_seconds{job="expiry-scan"} 0.25' in text
    assert 'pkiforge_scheduler_job_runs_total{job="expiry-scan"} 4.0' in text
    assert 'pkiforge_scheduler_job_failures_total{job="expiry-scan"} 1.0' in text
    assert 'pkiforge_scheduler_job_runs_total{job="tidy"} 0.0' in text
    assert 'last_run_timestamp_seconds{job="tidy"}' not in text  # never ran: no sample
    assert 'pkiforge_certificates_overdue{service="web"} 2.0' in text
    assert 'pkiforge_certificates_overdue{service="(none)"} 1.0' in text
    assert 'pkiforge_certificates_expiring_by_service{service="web",within="7d"} 2.0' in text
    assert 'pkiforge_certificates_expiring_by_service{service="web",within="30d"} 3.0' in text
    assert 'pkiforge_scheduler_job_interval_seconds{job="expiry-scan"} 21600.0' in text


def test_a_store_that_cannot_answer_leaves_the_scrape_working() -> None:
    def down() -> list[JobState]:
        raise StoreUnavailable("database unavailable")

    assert "pkiforge_scheduler" not in scrape(SchedulerCollector(down, {}))
