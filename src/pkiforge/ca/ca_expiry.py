"""The CA expiry check: the root and the intermediates warn long before their notAfter.

An intermediate is replaced by `pkiforge ca rotate`, a root by a new hierarchy that the fleet
must come to trust: both take time to plan, so the warning comes `warning` ahead (a year by
default). Each active CA within it is logged on every check, and one `ca.expiring` event is
recorded per CA certificate and threshold (the warning, then 90, 30 and 7 days), the first
time a check finds it within that many days; the event id names them, as for
`certificate.expiring`, so later checks record nothing more. Nothing in the CA changes, so
nothing goes into the audit trail.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from pkiforge.ca.context import CAContext
from pkiforge.ca.events import EventType
from pkiforge.ca.models import CAKind, CARecord, CAStatus

log = logging.getLogger("pkiforge.ca")
DAY = dt.timedelta(days=1)
# the thresholds below the warning, in days, each notified once
LATER_THRESHOLDS = (90, 30, 7)

ROTATE_INTERMEDIATE = (
    "rotate it before it expires: `pkiforge ca rotate {name}` (with an offline root, "
    "`--csr-out`, then sign and import the successor); every certificate it issued expires "
    "with it at the latest"
)
REPLACE_ROOT = (
    "plan a new root: make one, have every relying party trust it beside the old one, then "
    "sign new intermediates under it; when the root expires nothing under it is trusted"
)


@dataclass(frozen=True)
class CAExpiry:
    """One active CA and how long it has left."""

    ca: CARecord
    not_after: dt.datetime
    left: dt.timedelta
    threshold: int | None  # the smallest threshold it is within, in days; None: none

    @property
    def days_left(self) -> int:
        return self.left // DAY


class CAExpiryCheck:
    """Warns of active CAs within `warning` of their notAfter."""

    def __init__(self, ctx: CAContext, warning_days: int) -> None:
        self.ctx = ctx
        self.thresholds = tuple(
            sorted({warning_days, *(d for d in LATER_THRESHOLDS if d < warning_days)}, reverse=True)
        )

    def check(self) -> dict[str, Any]:
        """Log, notify; returns the days left of every active CA and which are warned of.

        Raises: StoreUnavailable.
        """
        now = self.ctx.clock.now()
        found = [self._expiry(ca, now) for ca in self.ctx.cas(fresh=True).values() if _active(ca)]
        due = [f for f in found if f.threshold is not None]
        for f in due:
            log.warning(
                "CA %s (%s) expires in %d days, on %s: %s",
                f.ca.name,
                f.ca.kind.value,
                f.days_left,
                f.not_after.isoformat(),
                "rotate it" if f.ca.kind is CAKind.INTERMEDIATE else "plan a new root",
            )
        if due and self.ctx.notifier is not None:
            self._notify(due)
        return {
            "days_left": {f.ca.name: f.days_left for f in found},
            "warned": [f.ca.name for f in due],
        }

    def _expiry(self, ca: CARecord, now: dt.datetime) -> CAExpiry:
        assert ca.certificate is not None
        not_after = ca.certificate.not_valid_after_utc
        left = not_after - now
        crossed = [days for days in self.thresholds if left <= days * DAY]
        return CAExpiry(ca, not_after, left, min(crossed) if crossed else None)

    def _notify(self, due: list[CAExpiry]) -> None:
        notifier = self.ctx.notifier
        assert notifier is not None
        with self.ctx.store.transaction() as tx:
            for f in due:
                cert = f.ca.certificate
                assert cert is not None
                serial = format(cert.serial_number, "x")
                advice = ROTATE_INTERMEDIATE if f.ca.kind is CAKind.INTERMEDIATE else REPLACE_ROOT
                notifier.emit(
                    tx,
                    EventType.CA_EXPIRING,
                    data={
                        "ca": f.ca.name,
                        "kind": f.ca.kind.value,
                        "serial": serial,
                        "not_after": f.not_after.isoformat(),
                        "days_left": f.days_left,
                        "threshold_days": f.threshold,
                        "action": advice.format(name=f.ca.name),
                    },
                    event_id=f"evt_ca_expiring_{serial}_{f.threshold}d",
                )


def _active(ca: CARecord) -> bool:
    return ca.status is CAStatus.ACTIVE and ca.certificate is not None
