"""The use-cases the API routers call, as the composition root (wiring.py) built them."""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field

from prometheus_client import Histogram

from pkiforge.ca.caller_certs import CallerCertificates
from pkiforge.ca.enrollment import EnrollmentService
from pkiforge.ca.registry import RegistryService
from pkiforge.errors import PkiError

LAST_SEEN_EVERY = 30.0  # seconds between `last_seen` writes per service and process


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
    certificates: CallerCertificates
    last_seen: LastSeen
    latency: Histogram
