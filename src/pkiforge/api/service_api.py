"""The use-cases the API routers call, wired once per process (rate limiter, metrics)."""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Histogram

from pkiforge.api.metrics import ExpiryCollector, LifecycleMetrics, request_latency
from pkiforge.ca.enrollment import EnrollmentService
from pkiforge.ca.models import CertificateQuery, CertStatus
from pkiforge.ca.ports import RateLimiter
from pkiforge.ca.registry import RegistryService
from pkiforge.ca.service_certs import ServiceCertificates
from pkiforge.errors import PkiError, StoreUnavailable
from pkiforge.settings import Settings
from pkiforge.store.ratelimit import InMemoryRateLimiter, RedisRateLimiter
from pkiforge.wiring import Pki

LAST_SEEN_EVERY = 30.0  # seconds between `last_seen` writes per service and process


def make_limiter(settings: Settings) -> RateLimiter:
    """Redis-backed when `redis_url` is set, else per process.

    Raises:
        StoreUnavailable: the Redis URL cannot be used.
    """
    limits = settings.rate_limits
    window = limits.issuance_window.total_seconds()
    if not settings.redis_url:
        return InMemoryRateLimiter(limits.issuance_limit, window)
    import redis

    try:
        client = redis.Redis.from_url(
            settings.redis_url, socket_timeout=2, socket_connect_timeout=2
        )
    except ValueError:
        raise StoreUnavailable("redis_url cannot be parsed") from None
    return RedisRateLimiter(client, limits.issuance_limit, window, limits.key_prefix)


@dataclass
class LastSeen:
    """Write `last_seen` at most every LAST_SEEN_EVERY seconds per service (per process)."""

    registry: RegistryService
    every: float = LAST_SEEN_EVERY
    _last: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def seen(self, service_id: str) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(service_id, -self.every) < self.every:
                return
            self._last[service_id] = now
        # an unregistered caller is not retried on every call either (registering sets
        # last_seen itself): otherwise each of its requests would cost a database write
        with contextlib.suppress(PkiError):  # bookkeeping only: never fail the request for it
            self.registry.touch(service_id)


@dataclass
class ServiceApi:
    """Registry, enrollment and certificates-for-services, with their metrics."""

    registry: RegistryService
    enrollment: EnrollmentService
    certificates: ServiceCertificates
    last_seen: LastSeen
    latency: Histogram

    @classmethod
    def build(cls, settings: Settings, pki: Pki, metrics: CollectorRegistry) -> ServiceApi:
        registry = RegistryService(pki.ctx)
        enrollment = EnrollmentService(pki.ctx)
        certificates = ServiceCertificates(
            pki.certificates,
            pki.revocation,
            registry,
            enrollment,
            make_limiter(settings),
            LifecycleMetrics(metrics),
        )

        def expiring(window: dt.timedelta) -> int:
            now = pki.ctx.clock.now()
            return pki.certificates.count(
                CertificateQuery(status=CertStatus.ACTIVE, expiring_before=now + window, now=now)
            )

        metrics.register(ExpiryCollector(expiring))
        return cls(registry, enrollment, certificates, LastSeen(registry), request_latency(metrics))
