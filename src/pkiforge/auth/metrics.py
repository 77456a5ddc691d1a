"""Prometheus metrics for request authentication, registered in a registry the app passes in."""

from __future__ import annotations

from enum import StrEnum

from prometheus_client import CollectorRegistry, Counter, Histogram

__all__ = ["AuthMetrics", "Outcome"]


class Outcome(StrEnum):
    """How one authentication attempt ended (the `outcome` label)."""

    SUCCESS = "success"
    FAILURE = "failure"  # 401: the request did not authenticate
    BLOCKED = "blocked"  # 429: the client address is cooling off
    UNAVAILABLE = "unavailable"  # 503: a store could not answer
    REJECTED = "rejected"  # 413: body too large, never verified


class AuthMetrics:
    """Counters and a latency histogram; no global registry, no per-key labels."""

    def __init__(self, registry: CollectorRegistry, *, namespace: str = "pkiforge") -> None:
        self.attempts = Counter(
            "auth_attempts",
            "Request authentication attempts by outcome.",
            ["outcome", "scheme"],
            namespace=namespace,
            registry=registry,
        )
        self.latency = Histogram(
            "auth_verification_seconds",
            "Time spent verifying one request signature.",
            namespace=namespace,
            registry=registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
        )

    def attempt(self, outcome: Outcome, scheme: str = "") -> None:
        """Count one attempt."""
        self.attempts.labels(outcome=outcome.value, scheme=scheme).inc()

    def observe(self, seconds: float) -> None:
        """Record the time one verification took."""
        self.latency.observe(seconds)
