"""Whether the database takes writes: the readiness write probe.

A database that answers queries may still refuse every write (a full disk, a read-only
replica, a failing sync). The probe updates the one row of `heartbeat` in a write transaction
of its own, durable like any other, and keeps the outcome for `interval` seconds: any number of
readiness checks within that time cost one write per process.

A write transaction that failed within the last `interval` seconds fails the check whatever
the heartbeat says: on a nearly full disk a one-row update may still fit where an issuance does
not, and a replica whose writes fail must stop saying it is ready. Once writes have not failed
for `interval` seconds, the next heartbeat decides.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import insert, update
from sqlalchemy.exc import SQLAlchemyError

from pkiforge.errors import StoreUnavailable
from pkiforge.store.db import SqlStore
from pkiforge.store.tables import HeartbeatRow

_ROW = 1


@dataclass(frozen=True)
class WriteCheck:
    """One check's outcome; `detail` (for the log only) says why it failed."""

    ok: bool
    detail: str | None = None


class WriteProbe:
    """The heartbeat write of one store, at most once per `interval` seconds."""

    def __init__(
        self,
        store: SqlStore,
        interval: float,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.store = store
        self.interval = interval
        self._monotonic = monotonic  # the clock of `SqlStore.last_write_failure`
        self._now = now
        self._last: tuple[float, WriteCheck] | None = None  # when, and the heartbeat's outcome
        self.writes = 0  # heartbeat writes attempted, for tests and curiosity
        # one probe at a time: callers that come meanwhile wait and share its outcome
        self._lock = threading.Lock()

    def check(self) -> WriteCheck:
        """Failed if a write failed lately; else the kept heartbeat outcome if it is recent,
        else a new heartbeat's."""
        with self._lock:
            now = self._monotonic()
            failed = self.store.last_write_failure
            if failed is not None and now - failed < self.interval:
                return WriteCheck(False, f"a write failed {now - failed:.1f}s ago")
            if self._last is not None and now - self._last[0] < self.interval:
                return self._last[1]
            outcome = self._beat()
            self._last = (self._monotonic(), outcome)
            return outcome

    def _beat(self) -> WriteCheck:
        self.writes += 1
        try:
            with self.store.transaction() as tx:
                done = tx.conn.execute(
                    update(HeartbeatRow)
                    .where(HeartbeatRow.id == _ROW)
                    .values(beat_at=self._now(), beats=HeartbeatRow.beats + 1)
                ).rowcount
                if not done:  # the row was deleted: make it again
                    tx.conn.execute(
                        insert(HeartbeatRow).values(id=_ROW, beat_at=self._now(), beats=1)
                    )
        except StoreUnavailable as exc:  # the cause, for the log
            return WriteCheck(False, exc.internal or str(exc))
        except SQLAlchemyError as exc:  # any refusal of the database (read-only, no table)
            return WriteCheck(False, type(exc).__name__)
        return WriteCheck(True)
