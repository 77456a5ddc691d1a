"""When to renew and how long to wait after a failure: pure functions shared by agent and server.

Nothing here reads a clock, sleeps or touches the network; callers pass `now` and act on the
answer, so the same rules drive `pkiforge agent`, `PkiClient.enable_auto_renewal` and the API
server's renewal of its own TLS certificate.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

from cryptography import x509

__all__ = ["DEFAULT_FRACTION", "Backoff", "RenewalPolicy", "spread"]

DEFAULT_FRACTION = 2 / 3


def spread(serial: int) -> float:
    """A stable value in [0, 1) drawn from a certificate's serial: jitter without an RNG.

    Serials are random (159 bits), so a fleet's certificates spread evenly, and one certificate
    always gets the same value, so repeated checks (cron, restarts) agree on its due time.
    """
    digest = hashlib.sha256(serial.to_bytes(20, "big")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass(frozen=True)
class RenewalPolicy:
    """Renew at `fraction` of the lifetime, or `renew_before` the end; up to `jitter` earlier.

    Jitter only ever moves renewal earlier (by up to `jitter` of the time from notBefore to the
    due time), so a certificate is never renewed later than configured.

    Raises:
        ValueError: a fraction outside (0, 1), a jitter outside [0, 1), or a negative margin.
    """

    fraction: float = DEFAULT_FRACTION
    renew_before: dt.timedelta | None = None
    jitter: float = 0.1
    # the server's margin (rotation_policy.renew_before_expiry_days), the default where no
    # `renew_before` is given: it applies where it leaves the certificate at least `fraction`
    # of its lifetime, so a certificate shorter than the margin is not renewed at once (and
    # again, and again) but at `fraction`
    server_margin: dt.timedelta | None = None

    def __post_init__(self) -> None:
        if not 0 < self.fraction < 1:
            raise ValueError(f"renewal fraction must be between 0 and 1, not {self.fraction}")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"jitter must be in [0, 1), not {self.jitter}")
        if self.renew_before is not None and self.renew_before <= dt.timedelta(0):
            raise ValueError("renew-before must be positive")
        if self.server_margin is not None and self.server_margin <= dt.timedelta(0):
            raise ValueError("the server's renewal margin must be positive")

    def due_at(self, not_before: dt.datetime, not_after: dt.datetime, serial: int) -> dt.datetime:
        """The instant from which a certificate with this window and serial should be renewed."""
        if self.renew_before is not None:
            base = max(not_before, not_after - self.renew_before)
        else:
            base = not_before + (not_after - not_before) * self.fraction
            if self.server_margin is not None:
                base = max(base, not_after - self.server_margin)
        return base - (base - not_before) * (self.jitter * spread(serial))

    def due(self, cert: x509.Certificate) -> dt.datetime:
        """`due_at` for a parsed certificate."""
        return self.due_at(cert.not_valid_before_utc, cert.not_valid_after_utc, cert.serial_number)

    def is_due(self, cert: x509.Certificate, now: dt.datetime) -> bool:
        """True once the certificate should be renewed."""
        return now >= self.due(cert)

    def wait(self, cert: x509.Certificate, now: dt.datetime, check_every: float) -> float:
        """Seconds to sleep before the next look: until due, but at most `check_every`."""
        return max(0.0, min(check_every, (self.due(cert) - now).total_seconds()))


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with a cap: `initial * factor**attempt`, less up to half as jitter.

    Raises:
        ValueError: non-positive delays or a factor below 1.
    """

    initial: float = 1.0
    factor: float = 2.0
    cap: float = 300.0

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.cap <= 0 or self.factor < 1:
            raise ValueError("backoff needs initial > 0, cap > 0 and factor >= 1")

    def delay(self, attempt: int, rand: float = 1.0) -> float:
        """Seconds to wait after failed attempt number `attempt` (0-based); `rand` in [0, 1]."""
        ceiling = min(self.cap, self.initial * self.factor ** min(attempt, 64))
        return ceiling / 2 + ceiling / 2 * rand
