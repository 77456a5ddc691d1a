"""The scheduler's leases and job state in `scheduler_jobs` (migration 0009).

A lease is taken with one conditional UPDATE: it changes the row only if nobody holds the
lease at that time (or the caller does), so of the processes that try at once exactly one
sees a changed row; PostgreSQL re-checks the condition on the row it waited for, SQLite runs
one writer at a time. The row is made first with `INSERT ... ON CONFLICT DO NOTHING`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

from sqlalchemy import Connection, CursorResult, Table, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from pkiforge.clock import utc
from pkiforge.scheduler.ports import JobState, RunRecord
from pkiforge.store.db import SqlStore
from pkiforge.store.tables import SchedulerJobRow

_JOBS = cast(Table, SchedulerJobRow.__table__)
_ERROR_CHARS = 2000  # a stored error is a summary; the log has the whole of it


class SqlLeaseStore:
    """The scheduler's `LeaseStore` port over the store's database."""

    def __init__(self, store: SqlStore) -> None:
        self._store = store

    def acquire(self, job: str, holder: str, now: dt.datetime, until: dt.datetime) -> bool:
        c = _JOBS.c
        with self._store.transaction() as tx:
            conn = tx.conn
            self._ensure_row(conn, job)
            taken = conn.execute(
                update(_JOBS)
                .where(
                    c.name == job,
                    or_(
                        c.holder.is_(None),
                        c.lease_expires_at.is_(None),
                        c.lease_expires_at <= utc(now),
                        c.holder == holder,
                    ),
                )
                .values(holder=holder, lease_expires_at=utc(until))
            )
            return _rowcount(taken) == 1

    def renew(self, job: str, holder: str, until: dt.datetime) -> bool:
        c = _JOBS.c
        with self._store.transaction(durable=False) as tx:
            renewed = tx.conn.execute(
                update(_JOBS)
                .where(c.name == job, c.holder == holder)
                .values(lease_expires_at=utc(until))
            )
            return _rowcount(renewed) == 1

    def finish(self, job: str, holder: str, record: RunRecord) -> bool:
        c = _JOBS.c
        values: dict[str, Any] = {
            "holder": None,
            "lease_expires_at": None,
            "last_run_at": utc(record.started_at),
            "last_duration": record.duration,
            "last_error": record.error[:_ERROR_CHARS] if record.error else None,
            "runs": c.runs + 1,
            "result": dict(record.result),
        }
        if record.error:
            values["failures"] = c.failures + 1
        else:
            values["last_success_at"] = utc(record.started_at)
        with self._store.transaction() as tx:
            done = tx.conn.execute(
                update(_JOBS).where(c.name == job, c.holder == holder).values(**values)
            )
            return _rowcount(done) == 1

    def release(self, job: str, holder: str) -> None:
        c = _JOBS.c
        with self._store.transaction(durable=False) as tx:
            tx.conn.execute(
                update(_JOBS)
                .where(c.name == job, c.holder == holder)
                .values(holder=None, lease_expires_at=None)
            )

    def state(self, job: str) -> JobState | None:
        with self._store.transaction(readonly=True) as tx:
            row = tx.conn.execute(select(_JOBS).where(_JOBS.c.name == job)).first()
        return _domain(row) if row is not None else None

    def states(self) -> list[JobState]:
        with self._store.transaction(readonly=True) as tx:
            rows = tx.conn.execute(select(_JOBS).order_by(_JOBS.c.name)).all()
        return [_domain(row) for row in rows]

    @staticmethod
    def _ensure_row(conn: Connection, job: str) -> None:
        make = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        conn.execute(
            make(_JOBS)
            .values(name=job, runs=0, failures=0)
            .on_conflict_do_nothing(index_elements=[_JOBS.c.name])
        )


def _ts(value: dt.datetime | None) -> dt.datetime | None:
    return utc(value) if value is not None else None


def _domain(row: Any) -> JobState:
    return JobState(
        name=row.name,
        holder=row.holder,
        lease_expires_at=_ts(row.lease_expires_at),
        last_run_at=_ts(row.last_run_at),
        last_success_at=_ts(row.last_success_at),
        last_error=row.last_error,
        last_duration=row.last_duration,
        runs=row.runs,
        failures=row.failures,
        result=row.result or {},
    )


def _rowcount(result: Any) -> int:
    return int(cast(CursorResult[Any], result).rowcount)
