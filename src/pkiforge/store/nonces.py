"""The database nonce store: `nonces`, shared by the workers and replicas on one database.

Table (migration 0002): `nonces`, one row per (key id, nonce) with its expiry, and one row
named `memory-start` with the time the table's memory began. A database failure becomes
`StoreUnavailable`, so a verifier built on this refuses rather than waves a request through.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import threading

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError as SAIntegrityError
from sqlalchemy.orm import Session

from pkiforge.auth.nonces import memory_reset, nonce_key, process_start
from pkiforge.clock import Clock, SystemClock, utc
from pkiforge.errors import StoreUnavailable
from pkiforge.store.db import SqlStore
from pkiforge.store.key_repos import _insert, _rowcount, _session
from pkiforge.store.tables import NonceRow

__all__ = ["MEMORY_ROW", "SqlNonceStore", "stored_nonce_key"]

log = logging.getLogger("pkiforge.auth")


def stored_nonce_key(key_id: str, nonce: str) -> str:
    """The `nonces` primary key: `nonce_key()`, hashed when it would not fit 255 characters."""
    name = nonce_key(key_id, nonce)
    if len(name) <= 255:
        return name
    return "sha256:" + hashlib.sha256(name.encode("utf-8")).hexdigest()


# The row holding when the table's memory began (in `expires_at`); no nonce key can take this
# name: they start with a digit or "sha256:".
MEMORY_ROW = "memory-start"


class SqlNonceStore:
    """`NonceStore` over the `nonces` table, for several workers sharing one database.

    One INSERT per request; a conflict means the pair was seen, unless the stored row has
    already expired (then it is taken over). Expired rows are deleted at most once per
    `purge_every` seconds per process, inside a request's transaction.

    A restored backup brings back an older table that lacks the nonces accepted since the
    backup, so the store refuses signatures created before its memory began (`memory_reset`):
    the later of the `memory-start` row and this process's start. A process cannot tell a
    restore made while no process ran from a pause, so every start begins a memory for that
    process. A restore under a running process is caught in each nonce write's transaction:
    the `memory-start` row is gone, or older than one this process saw, or the newest expiry
    in the table is older than the newest unexpired nonce this process stored (the nonces
    it accepted were lost). Then the row is set to now and the request is refused.
    """

    def __init__(
        self, store: SqlStore, *, clock: Clock | None = None, purge_every: float = 60.0
    ) -> None:
        self._store = store
        self._clock = clock or SystemClock()
        self._purge_every = dt.timedelta(seconds=purge_every)
        self._lock = threading.Lock()
        self._last_purge: dt.datetime | None = None
        self._opened = utc(process_start(self._clock))
        self._seen_start: dt.datetime | None = None  # the newest memory start seen here
        self._newest = self._opened  # the latest expiry of a nonce this process stored

    def open(self) -> None:
        """At start: record the memory start if the table has none (a new table).

        Never raises: a database that cannot answer now refuses requests until it does, and
        the first nonce write records the start then.
        """
        try:
            with _session(self._store, "nonce store") as s:
                stmt = _insert(s, NonceRow).values(nonce_key=MEMORY_ROW, expires_at=self._opened)
                s.execute(stmt.on_conflict_do_nothing())
        except StoreUnavailable as exc:  # its message names no host
            log.warning("nonce store: cannot record its memory start (%s)", exc)

    def check_and_store(
        self, key_id: str, nonce: str, ttl_seconds: int, *, created: dt.datetime
    ) -> bool:
        now = utc(self._clock.now())
        name = stored_nonce_key(key_id, nonce)
        until = now + dt.timedelta(seconds=max(1, ttl_seconds))
        with self._lock:  # read before the transaction begins: it sees what these committed
            seen_start, newest = self._seen_start, self._newest
        lost = stored = refused = False
        try:
            with _session(self._store, "nonce store") as s:
                if self._purge_due(now):
                    s.execute(
                        delete(NonceRow).where(
                            NonceRow.expires_at <= now, NonceRow.nonce_key != MEMORY_ROW
                        )
                    )
                stored_start, latest = s.execute(_MEMORY_QUERY).one()
                start = utc(stored_start) if stored_start is not None else now
                lost = (
                    stored_start is None
                    or (seen_start is not None and start < seen_start)
                    or (newest > now and (latest is None or utc(latest) < newest))
                )
                if lost:
                    start = now
                    stmt = _insert(s, NonceRow).values(nonce_key=MEMORY_ROW, expires_at=now)
                    s.execute(
                        stmt.on_conflict_do_update(
                            index_elements=["nonce_key"], set_={"expires_at": now}
                        )
                    )
                refused = utc(created) < max(start, self._opened)
                if not refused:
                    stored = self._store_nonce(s, name, now, until)
        except SAIntegrityError:  # a concurrent writer won in between: seen
            return False
        self._remember(start, lost, until if stored else None, now)
        if lost:
            log.warning(
                "nonce store: the nonces table lost nonces it held (restored or emptied); "
                "signatures created before now are refused"
            )
        if refused:
            raise memory_reset()
        return stored

    @staticmethod
    def _store_nonce(s: Session, name: str, now: dt.datetime, until: dt.datetime) -> bool:
        stmt = _insert(s, NonceRow).values(nonce_key=name, expires_at=until)
        stmt = stmt.on_conflict_do_nothing().returning(NonceRow.nonce_key)
        if s.execute(stmt).first() is not None:
            return True
        taken_over = s.execute(
            update(NonceRow)
            .where(NonceRow.nonce_key == name, NonceRow.expires_at <= now)
            .values(expires_at=until)
        )
        return _rowcount(taken_over) == 1

    def _remember(
        self, start: dt.datetime, lost: bool, stored_until: dt.datetime | None, now: dt.datetime
    ) -> None:
        with self._lock:
            if self._seen_start is None or start > self._seen_start:
                self._seen_start = start
            if lost:  # what this process stored before is gone: nothing to look for any more
                self._newest = now
            if stored_until is not None:
                self._newest = max(self._newest, stored_until)

    def _purge_due(self, now: dt.datetime) -> bool:
        with self._lock:
            if self._last_purge is not None and now - self._last_purge < self._purge_every:
                return False
            self._last_purge = now
            return True


# the memory start and the newest expiry in the table (the row's own start, never newer than
# now, does not hide a newer nonce)
_MEMORY_QUERY = select(
    select(NonceRow.expires_at).where(NonceRow.nonce_key == MEMORY_ROW).scalar_subquery(),
    select(func.max(NonceRow.expires_at)).scalar_subquery(),
)
