"""`certificate.expiring` events from the expiry scan's findings."""

from __future__ import annotations

from pkiforge.ca.context import CAContext
from pkiforge.ca.events import EventType
from pkiforge.ca.expiry_scan import ExpiryReport
from pkiforge.ca.notifications import ADVICE


class ExpiryNotices:
    """An observer of the expiry scan: one `certificate.expiring` per certificate and
    notification threshold, the first time a scan finds it within that many days (a renewed
    certificate is left out by the scan itself). The event id names the certificate and the
    threshold, so a later scan finding the same pair records nothing."""

    def __init__(self, ctx: CAContext) -> None:
        self.ctx = ctx

    def __call__(self, report: ExpiryReport) -> None:
        due = [f for f in report.findings if f.threshold is not None]
        notifier = self.ctx.notifier
        if not due or notifier is None:
            return
        kind = EventType.CERTIFICATE_EXPIRING
        with self.ctx.store.transaction() as tx:
            for finding in due:
                cert = finding.certificate
                data = {
                    "service": cert.service_id,
                    "serial": cert.serial_hex,
                    "common_name": cert.common_name,
                    "names": list(cert.names),
                    "issuer": cert.issuer,
                    "not_after": cert.not_after.isoformat(),
                    "days_left": finding.days_left,
                    "threshold_days": finding.threshold,
                    "overdue": finding.overdue,
                    "action": ADVICE[kind],
                }
                notifier.emit(
                    tx,
                    kind,
                    service_id=cert.service_id,
                    data=data,
                    event_id=f"evt_expiring_{cert.serial_hex}_{finding.threshold}d",
                )
