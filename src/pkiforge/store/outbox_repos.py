"""The outbox (`ca/ports.py` OutboxRepository): events and their deliveries, in SQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Table, and_, func, insert, or_, select, update

from pkiforge.ca.events import Delivery, DeliveryStatus, Event, EventType, OutboxStats
from pkiforge.clock import utc
from pkiforge.store.tables import DeliveryRow, EventRow
from pkiforge.store.unit import Repo

_EVENTS = cast(Table, EventRow.__table__)
_DELIVERIES = cast(Table, DeliveryRow.__table__)
_JOINED = _DELIVERIES.join(_EVENTS, _DELIVERIES.c.event_id == _EVENTS.c.event_id)
_COLUMNS = (
    _DELIVERIES.c.id,
    _DELIVERIES.c.endpoint,
    _DELIVERIES.c.status,
    _DELIVERIES.c.attempts,
    _DELIVERIES.c.next_attempt_at,
    _DELIVERIES.c.last_error,
    _DELIVERIES.c.delivered_at,
    _EVENTS.c.event_id,
    _EVENTS.c.type,
    _EVENTS.c.occurred_at,
    _EVENTS.c.service_id,
    _EVENTS.c.data,
)


class SqlOutboxRepository(Repo):
    def add(self, event: Event, endpoints: Sequence[str], at: dt.datetime) -> None:
        self.c.execute(
            insert(_EVENTS).values(
                event_id=event.event_id,
                type=event.type.value,
                occurred_at=utc(event.occurred_at),
                service_id=event.service_id,
                data=event.data,
            )
        )
        self.c.execute(
            insert(_DELIVERIES),
            [
                {
                    "event_id": event.event_id,
                    "endpoint": endpoint,
                    "status": DeliveryStatus.PENDING.value,
                    "attempts": 0,
                    "next_attempt_at": utc(at),
                }
                for endpoint in endpoints
            ],
        )

    def has(self, event_id: str) -> bool:
        found = self.c.execute(select(_EVENTS.c.event_id).where(_EVENTS.c.event_id == event_id))
        return found.first() is not None

    def claim_due(self, now: dt.datetime, until: dt.datetime, limit: int) -> list[Delivery]:
        now, until = utc(now), utc(until)
        free = and_(
            _DELIVERIES.c.status == DeliveryStatus.PENDING.value,
            _DELIVERIES.c.next_attempt_at <= now,
            or_(_DELIVERIES.c.held_until.is_(None), _DELIVERIES.c.held_until <= now),
        )
        rows = self.c.execute(
            select(*_COLUMNS)
            .select_from(_JOINED)
            .where(free)
            .order_by(_DELIVERIES.c.id)
            .limit(limit)
        ).all()
        claimed = []
        for row in rows:
            # the same condition again, in the update: of two replicas that read the same
            # row, only the one whose update matches it holds the delivery
            won = self.c.execute(
                update(_DELIVERIES).where(_DELIVERIES.c.id == row.id, free).values(held_until=until)
            ).rowcount
            if won == 1:
                claimed.append(_delivery(row))
        return claimed

    def delivered(self, delivery_id: int, at: dt.datetime, attempts: int) -> None:
        self.c.execute(
            update(_DELIVERIES)
            .where(_DELIVERIES.c.id == delivery_id)
            .values(
                status=DeliveryStatus.DELIVERED.value,
                attempts=attempts,
                delivered_at=utc(at),
                held_until=None,
                last_error=None,
            )
        )

    def attempt_failed(
        self, delivery_id: int, attempts: int, error: str, retry_at: dt.datetime | None
    ) -> None:
        values: dict[str, Any] = {"attempts": attempts, "last_error": error, "held_until": None}
        if retry_at is None:
            values["status"] = DeliveryStatus.FAILED.value
        else:
            values["next_attempt_at"] = utc(retry_at)
        self.c.execute(update(_DELIVERIES).where(_DELIVERIES.c.id == delivery_id).values(values))

    def list(self, status: DeliveryStatus | None = None, limit: int = 100) -> list[Delivery]:
        stmt = select(*_COLUMNS).select_from(_JOINED).order_by(_DELIVERIES.c.id.desc()).limit(limit)
        if status is not None:
            stmt = stmt.where(_DELIVERIES.c.status == status.value)
        return [_delivery(r) for r in self.c.execute(stmt)]

    def stats(self) -> OutboxStats:
        status = _DELIVERIES.c.status
        counts = self.c.execute(select(status, func.count()).group_by(status)).all()
        oldest = self.c.execute(
            select(func.min(_EVENTS.c.occurred_at))
            .select_from(_JOINED)
            .where(status == DeliveryStatus.PENDING.value)
        ).scalar()
        return OutboxStats(
            {DeliveryStatus(row[0]): int(row[1]) for row in counts},
            utc(oldest) if oldest is not None else None,
        )

    def retry(self, delivery_ids: Sequence[int] | None, at: dt.datetime) -> int:
        stmt = update(_DELIVERIES).where(_DELIVERIES.c.status == DeliveryStatus.FAILED.value)
        if delivery_ids is not None:
            stmt = stmt.where(_DELIVERIES.c.id.in_(list(delivery_ids)))
        return self.c.execute(
            stmt.values(
                status=DeliveryStatus.PENDING.value,
                attempts=0,
                next_attempt_at=utc(at),
                held_until=None,
            )
        ).rowcount

    def statuses(self, delivery_ids: Sequence[int]) -> dict[int, DeliveryStatus]:
        rows = self.c.execute(
            select(_DELIVERIES.c.id, _DELIVERIES.c.status).where(
                _DELIVERIES.c.id.in_(list(delivery_ids))
            )
        )
        return {int(r.id): DeliveryStatus(r.status) for r in rows}

    def hasten(self, delivery_ids: Sequence[int], at: dt.datetime) -> int:
        pending = and_(
            _DELIVERIES.c.id.in_(list(delivery_ids)),
            _DELIVERIES.c.status == DeliveryStatus.PENDING.value,
        )
        count = len(self.c.execute(select(_DELIVERIES.c.id).where(pending)).all())
        self.c.execute(
            update(_DELIVERIES)
            .where(pending, _DELIVERIES.c.next_attempt_at > utc(at))
            .values(next_attempt_at=utc(at))
        )
        return count


def _delivery(row: Any) -> Delivery:
    event = Event(
        row.event_id, EventType(row.type), utc(row.occurred_at), row.service_id, dict(row.data)
    )
    return Delivery(
        row.id,
        event,
        row.endpoint,
        DeliveryStatus(row.status),
        row.attempts,
        utc(row.next_attempt_at) if row.next_attempt_at else None,
        row.last_error,
        utc(row.delivered_at) if row.delivered_at else None,
    )
