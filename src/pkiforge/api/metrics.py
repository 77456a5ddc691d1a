"""Prometheus metrics of the API, in the app's own registry (never the global one).

Counters of the certificate lifecycle by issuer and profile, request latency by route template,
gauges of certificates expiring within 30/7/1 days that are counted from the store when
Prometheus scrapes, and readiness and free space, also taken on each scrape.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pkiforge.ca.models import CertificateRecord
from pkiforge.errors import PkiError

log = logging.getLogger("pkiforge.api")
NAMESPACE = "pkiforge"
EXPIRY_WINDOWS = (
    ("30d", dt.timedelta(days=30)),
    ("7d", dt.timedelta(days=7)),
    ("1d", dt.timedelta(days=1)),
)


class LifecycleMetrics:
    """The core's `IssuanceEvents` port, counting into Prometheus counters."""

    def __init__(self, registry: CollectorRegistry) -> None:
        def counter(name: str, doc: str) -> Counter:
            return Counter(name, doc, ["issuer", "profile"], namespace=NAMESPACE, registry=registry)

        self.issued_total = counter("certificates_issued", "Certificates issued (not renewals).")
        self.renewed_total = counter("certificates_renewed", "Certificates issued as renewals.")
        self.revoked_total = counter("certificates_revoked", "Certificates revoked.")
        self.failed_total = counter("certificates_failed", "Issuance attempts that failed.")

    def issued(self, record: CertificateRecord, *, renewed: bool) -> None:
        kind = self.renewed_total if renewed else self.issued_total
        kind.labels(issuer=record.issuer, profile=record.profile).inc()

    def revoked(self, record: CertificateRecord) -> None:
        self.revoked_total.labels(issuer=record.issuer, profile=record.profile).inc()

    def failed(self, issuer: str, profile: str) -> None:
        self.failed_total.labels(issuer=issuer, profile=profile).inc()


class ExpiryCollector(Collector):
    """Active certificates expiring within 30, 7 and 1 days, counted on each scrape."""

    def __init__(self, count_expiring: Callable[[dt.timedelta], int]) -> None:
        self._count = count_expiring

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(
            f"{NAMESPACE}_certificates_expiring",
            "Active certificates whose notAfter falls within the window.",
            labels=["within"],
        )
        try:
            for label, window in EXPIRY_WINDOWS:
                gauge.add_metric([label], self._count(window))
        except PkiError as exc:  # the store is down: report nothing rather than fail the scrape
            log.warning("expiry gauges skipped: %s", exc)
            return
        yield gauge


def request_latency(registry: CollectorRegistry) -> Histogram:
    """Latency by method, route template (never the raw path) and status."""
    return Histogram(
        "http_request_duration_seconds",
        "HTTP request latency.",
        ["method", "route", "status"],
        namespace=NAMESPACE,
        registry=registry,
        buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
    )


def durable_wait(registry: CollectorRegistry) -> Histogram:
    """How long answers were held for their commits to reach the disk (store/durable.py)."""
    return Histogram(
        "durable_wait_seconds",
        "Time an answer waited for the sync of the WAL that made its commit durable.",
        namespace=NAMESPACE,
        registry=registry,
        buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25),
    )


class ReadinessCollector(Collector):
    """`pkiforge_ready` (what /readyz would answer) and each check, taken on each scrape."""

    def __init__(self, checks: Callable[[], Mapping[str, str]]) -> None:
        self._checks = checks

    def collect(self) -> Iterator[Metric]:
        checks = self._checks()
        passing = {name: value == "ok" for name, value in checks.items()}
        yield GaugeMetricFamily(
            f"{NAMESPACE}_ready",
            "1 when /readyz answers 200 (the process can do its job), else 0.",
            value=int(all(passing.values())),
        )
        gauge = GaugeMetricFamily(
            f"{NAMESPACE}_readiness_check",
            "Each readiness check (database, write, storage, redis): 1 passing, 0 failing.",
            labels=["check"],
        )
        for name, ok in passing.items():
            gauge.add_metric([name], int(ok))
        yield gauge


class StorageCollector(Collector):
    """Free space under the SQLite database and the reserve kept on it (store/space.py)."""

    def __init__(self, free: Callable[[], int], reserve: int) -> None:
        self._free = free
        self._reserve = reserve

    def collect(self) -> Iterator[Metric]:
        try:
            free = self._free()
        except OSError as exc:  # report nothing rather than fail the scrape
            log.warning("storage gauges skipped: %s", exc.strerror)
            return
        yield GaugeMetricFamily(
            f"{NAMESPACE}_storage_free_bytes",
            "Free bytes on the filesystem of the SQLite database, as an unprivileged process "
            "may use them.",
            value=free,
        )
        yield GaugeMetricFamily(
            f"{NAMESPACE}_storage_reserve_bytes",
            "storage.min_free_bytes: below it the API refuses new write work.",
            value=self._reserve,
        )
