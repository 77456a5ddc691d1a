"""ACME metrics: orders by the state they reach, validations by type and outcome."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from pkiforge.acme.models import Status


class AcmeMetrics:
    """`AcmeEvents` as Prometheus counters in the app's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._orders = Counter(
            "pkiforge_acme_orders",
            "ACME orders by the state they reached: pending (created), valid, invalid",
            ["state"],
            registry=registry,
        )
        self._challenges = Counter(
            "pkiforge_acme_validations",
            "ACME challenge validations by challenge type and outcome (valid, or the error type)",
            ["type", "outcome"],
            registry=registry,
        )

    def order(self, status: Status) -> None:
        self._orders.labels(status.value).inc()

    def challenge(self, type: str, error: str | None) -> None:
        self._challenges.labels(type, error or "valid").inc()
