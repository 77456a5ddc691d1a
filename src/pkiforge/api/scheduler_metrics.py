"""The scheduler's metrics, read from the job rows on each scrape: whichever process ran a job
(a worker, another replica, a cron run), every replica reports the same values."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pkiforge.api.metrics import NAMESPACE
from pkiforge.errors import PkiError
from pkiforge.scheduler.jobs import EXPIRY_SCAN
from pkiforge.scheduler.ports import JobState

log = logging.getLogger("pkiforge.api")


class SchedulerCollector(Collector):
    """Per job: last run and last success (Unix time), last duration, runs and failures; and
    the overdue and expiring certificates per service that the last expiry scan found; each
    job's interval, so that an alert can tell a job that stopped running."""

    def __init__(
        self, states: Callable[[], list[JobState]], intervals: Mapping[str, float]
    ) -> None:
        self._states = states
        self._intervals = intervals  # seconds between runs, per job this process would run

    def collect(self) -> Iterator[Metric]:
        try:
            states = self._states()
        except PkiError as exc:  # the store is down: report nothing rather than fail the scrape
            log.warning("scheduler metrics skipped: %s", exc)
            return
        prefix = f"{NAMESPACE}_scheduler_job"
        last_run = GaugeMetricFamily(
            f"{prefix}_last_run_timestamp_seconds", "When the job's last run began.", labels=["job"]
        )
        last_success = GaugeMetricFamily(
            f"{prefix}_last_success_timestamp_seconds",
            "When the job's last successful run began.",
            labels=["job"],
        )
        duration = GaugeMetricFamily(
            f"{prefix}_duration_seconds", "How long the job's last run took.", labels=["job"]
        )
        runs = CounterMetricFamily(f"{prefix}_runs", "Runs of the job.", labels=["job"])
        failures = CounterMetricFamily(
            f"{prefix}_failures", "Runs of the job that failed.", labels=["job"]
        )
        interval = GaugeMetricFamily(
            f"{prefix}_interval_seconds", "How often the job is due.", labels=["job"]
        )
        for name, seconds in sorted(self._intervals.items()):
            interval.add_metric([name], seconds)
        expiring = GaugeMetricFamily(
            f"{NAMESPACE}_certificates_expiring_by_service",
            "Certificates expiring within the window and not renewed, per service, as the "
            "last expiry scan found them.",
            labels=["service", "within"],
        )
        overdue = GaugeMetricFamily(
            f"{NAMESPACE}_certificates_overdue",
            "Certificates past renew_before_expiry_days and not renewed, per service, as the "
            "last expiry scan found them.",
            labels=["service"],
        )
        for state in states:
            if state.last_run_at is not None:
                last_run.add_metric([state.name], state.last_run_at.timestamp())
            if state.last_success_at is not None:
                last_success.add_metric([state.name], state.last_success_at.timestamp())
            if state.last_duration is not None:
                duration.add_metric([state.name], state.last_duration)
            runs.add_metric([state.name], state.runs)
            failures.add_metric([state.name], state.failures)
            if state.name == EXPIRY_SCAN:
                by_service = state.result.get("overdue_by_service") or {}
                for service, count in sorted(by_service.items()):
                    overdue.add_metric([str(service)], float(count))
                windows = state.result.get("expiring_by_service") or {}
                for service, counts in sorted(windows.items()):
                    for within, count in counts.items():
                        expiring.add_metric([str(service), str(within)], float(count))
        yield from (last_run, last_success, duration, runs, failures, interval, expiring, overdue)
