"""The scheduled jobs' queries on certificates: the expiry scan's and tidy's (ca/ports.py's
`MaintenanceRepository`)."""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

from sqlalchemy import CursorResult, Table, and_, exists, func, select, update

from pkiforge.ca.models import RESPONDER_PROFILE, CertStatus, ExpiringCertificate
from pkiforge.clock import utc
from pkiforge.store.tables import CertificateRow, RevocationRow
from pkiforge.store.unit import Repo

_CERTS = cast(Table, CertificateRow.__table__)
_REVS = cast(Table, RevocationRow.__table__)
_SUCCESSOR = _CERTS.alias("successor")
# a renewal that was issued (active, or revoked since): the predecessor is superseded
_RENEWED = (
    exists()
    .where(
        _SUCCESSOR.c.renewed_from == _CERTS.c.serial_number,
        _SUCCESSOR.c.status.in_((CertStatus.ACTIVE.value, CertStatus.REVOKED.value)),
    )
    .correlate(_CERTS)
)


class SqlMaintenanceRepository(Repo):
    def expiring(self, until: dt.datetime, now: dt.datetime) -> list[ExpiringCertificate]:
        c = _CERTS.c
        stmt = (
            select(
                c.serial_number,
                c.issuer,
                c.service_id,
                c.common_name,
                c.names,
                c.not_after,
                _RENEWED.label("renewed"),
            )
            .where(
                c.status == CertStatus.ACTIVE.value,
                c.not_after > utc(now),
                c.not_after <= utc(until),
                c.archived_at.is_(None),
                c.profile != RESPONDER_PROFILE,  # replaced by the ocsp-refresh job
            )
            .order_by(c.not_after, c.serial_number)
        )
        return [
            ExpiringCertificate(
                serial=int(row.serial_number, 16),
                issuer=row.issuer,
                service_id=row.service_id,
                common_name=row.common_name,
                names=tuple(row.names or ()),
                not_after=utc(row.not_after),
                renewed=bool(row.renewed),
            )
            for row in self.c.execute(stmt)
        ]

    def expired_on_crl(self, issuer: str, after: dt.datetime, until: dt.datetime) -> int:
        c = _CERTS.c
        stmt = (
            select(func.count())
            .select_from(_CERTS.join(_REVS, _REVS.c.serial_number == c.serial_number))
            .where(c.issuer == issuer, c.not_after > utc(after), c.not_after <= utc(until))
        )
        return int(self.c.execute(stmt).scalar() or 0)

    def archive(
        self,
        expired_before: dt.datetime,
        at: dt.datetime,
        limit: int,
        expired_from: dt.datetime | None = None,
    ) -> tuple[int, dt.datetime | None]:
        c = _CERTS.c
        window = [c.not_after <= utc(expired_before), c.archived_at.is_(None)]
        if expired_from is not None:
            window.append(c.not_after >= utc(expired_from))
        batch = (
            select(c.serial_number, c.not_after).where(*window).order_by(c.not_after).limit(limit)
        )
        rows = self.c.execute(batch).all()
        if not rows:
            return 0, None
        result = self.c.execute(
            update(_CERTS)
            .where(
                and_(c.serial_number.in_([r.serial_number for r in rows]), c.archived_at.is_(None))
            )
            .values(archived_at=utc(at))
        )
        return _rowcount(result), utc(rows[-1].not_after)


def _rowcount(result: Any) -> int:
    return int(cast(CursorResult[Any], result).rowcount)
