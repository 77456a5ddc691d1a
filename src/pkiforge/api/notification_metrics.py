"""Metrics of notification delivery, read from the outbox on each scrape: every replica
reports the same, whichever process delivers."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pkiforge.api.metrics import NAMESPACE
from pkiforge.ca.events import DeliveryStatus, OutboxStats
from pkiforge.errors import PkiError

log = logging.getLogger("pkiforge.api")


class NotificationCollector(Collector):
    """`pkiforge_notification_deliveries{status}` (pending, delivered, failed) and
    `pkiforge_notification_oldest_pending_timestamp_seconds` (absent when none waits)."""

    def __init__(self, stats: Callable[[], OutboxStats]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        try:
            stats = self._stats()
        except PkiError as exc:  # the store is down: report nothing rather than fail the scrape
            log.warning("notification metrics skipped: %s", exc)
            return
        deliveries = GaugeMetricFamily(
            f"{NAMESPACE}_notification_deliveries",
            "Webhook deliveries in the outbox by status: pending (not yet delivered, retried "
            "until attempts run out), delivered, failed (every attempt failed).",
            labels=["status"],
        )
        for status in DeliveryStatus:
            deliveries.add_metric([status.value], stats.by_status.get(status, 0))
        yield deliveries
        oldest = GaugeMetricFamily(
            f"{NAMESPACE}_notification_oldest_pending_timestamp_seconds",
            "When the event of the oldest pending delivery happened.",
        )
        if stats.oldest_pending is not None:
            oldest.add_metric([], stats.oldest_pending.timestamp())
        yield oldest
