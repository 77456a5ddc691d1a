"""The expiry scan: which certificates near their notAfter, past which notification
threshold, and which are overdue (due for renewal by `renew_before`, and not renewed).

The server holds no service's key and renews nothing itself: what it finds is recorded (the
scheduler stores the summary, the metrics show overdue certificates per service) and handed to
the observers, which turn it into notifications.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pkiforge.ca.context import CAContext
from pkiforge.ca.models import ExpiringCertificate

DAY = dt.timedelta(days=1)
NO_SERVICE = "(none)"  # the service label of a certificate issued to no registered service
LISTED = 20  # overdue serials named in the summary; the counts cover all of them
# the windows of the per-service expiring counts (the metrics' `within`), in days
WINDOWS = (30, 7, 1)


@dataclass(frozen=True)
class ExpiryPolicy:
    """`rotation_policy` as the core needs it."""

    renew_before: dt.timedelta
    thresholds: tuple[int, ...]  # days before notAfter, largest first

    @property
    def horizon(self) -> dt.timedelta:
        """How far ahead the scan looks."""
        return max(self.renew_before, max((*self.thresholds, *WINDOWS)) * DAY)


@dataclass(frozen=True)
class Finding:
    """One certificate the scan found: how long it has left, the smallest notification
    threshold it is within (None: none yet), and whether it is overdue."""

    certificate: ExpiringCertificate
    left: dt.timedelta
    threshold: int | None
    overdue: bool

    @property
    def days_left(self) -> int:
        """Whole days left (0 in its last day)."""
        return self.left // DAY


@dataclass(frozen=True)
class ExpiryReport:
    """Everything one scan found, renewed certificates left out (they are superseded)."""

    scanned_at: dt.datetime
    findings: tuple[Finding, ...]
    renewed: int  # near expiry but already renewed: nothing is due for them

    def summary(self) -> dict[str, Any]:
        """Plain values for the job's state and the metrics."""
        within = Counter(str(f.threshold) for f in self.findings if f.threshold is not None)
        overdue = [f for f in self.findings if f.overdue]
        by_service = Counter(f.certificate.service_id or NO_SERVICE for f in overdue)
        expiring: dict[str, dict[str, int]] = {}
        for f in self.findings:
            counts = expiring.setdefault(f.certificate.service_id or NO_SERVICE, {})
            for days in WINDOWS:
                if f.left <= days * DAY:
                    counts[f"{days}d"] = counts.get(f"{days}d", 0) + 1
        return {
            "scanned_at": self.scanned_at.isoformat(),
            "found": len(self.findings),
            "renewed": self.renewed,
            "within_days": dict(sorted(within.items(), key=lambda kv: -int(kv[0]))),
            "overdue": len(overdue),
            "overdue_by_service": dict(sorted(by_service.items())),
            "expiring_by_service": {s: c for s, c in sorted(expiring.items()) if c},
            "overdue_serials": [f.certificate.serial_hex for f in overdue[:LISTED]],
        }


class ExpiryScan:
    """Find the certificates near expiry and tell the observers."""

    def __init__(
        self,
        ctx: CAContext,
        policy: ExpiryPolicy,
        observers: Sequence[Callable[[ExpiryReport], None]] = (),
    ) -> None:
        self.ctx = ctx
        self.policy = policy
        self.observers = tuple(observers)

    def scan(self) -> ExpiryReport:
        """Raises StoreUnavailable."""
        now = self.ctx.clock.now()
        with self.ctx.store.transaction(readonly=True) as tx:
            near = tx.maintenance.expiring(now + self.policy.horizon, now)
        findings = tuple(self._finding(cert, now) for cert in near if not cert.renewed)
        report = ExpiryReport(now, findings, renewed=sum(1 for cert in near if cert.renewed))
        for observe in self.observers:
            observe(report)
        return report

    def _finding(self, cert: ExpiringCertificate, now: dt.datetime) -> Finding:
        left = cert.not_after - now
        crossed = [days for days in self.policy.thresholds if left <= days * DAY]
        return Finding(
            cert,
            left,
            threshold=min(crossed) if crossed else None,
            overdue=left <= self.policy.renew_before,
        )
