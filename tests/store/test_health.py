"""The readiness write probe (SQLite and PostgreSQL) and the free-space reserve (SQLite)."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from pkiforge.errors import StorageFull, StoreUnavailable
from pkiforge.store.db import SqlStore
from pkiforge.store.health import WriteProbe
from pkiforge.store.space import DiskReserve

AT = dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


class Clock:
    """A monotonic clock that moves when told, from the real one's reading (the store notes
    failures by the real one)."""

    def __init__(self) -> None:
        self.now = time.monotonic()

    def __call__(self) -> float:
        return self.now


def _beats(store: SqlStore) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(text("SELECT beats FROM heartbeat WHERE id = 1")).scalar_one())


def _fail(store: SqlStore, *, readonly: bool = False) -> None:
    """A transaction that the database fails (OperationalError: StoreUnavailable)."""
    with pytest.raises(StoreUnavailable), store.transaction(readonly=readonly) as tx:
        if tx.dialect == "postgresql":
            tx.conn.execute(text("SET LOCAL statement_timeout = 1"))
            tx.conn.execute(text("SELECT pg_sleep(1)"))  # cancelled: 57014, operational
        else:
            tx.conn.execute(text("SELECT * FROM no_such_table"))


def test_many_checks_within_the_interval_cost_one_write(store: SqlStore) -> None:
    clock = Clock()
    probe = WriteProbe(store, 5.0, monotonic=clock, now=lambda: AT)
    assert _beats(store) == 0  # the migration made the row
    assert all(probe.check().ok for _ in range(50))
    assert probe.writes == 1 and _beats(store) == 1
    clock.now += 5.0
    assert probe.check().ok
    assert probe.writes == 2 and _beats(store) == 2


def test_a_deleted_heartbeat_row_is_made_again(store: SqlStore) -> None:
    with store.engine.begin() as conn:
        conn.execute(text("DELETE FROM heartbeat"))
    assert WriteProbe(store, 5.0, now=lambda: AT).check().ok
    assert _beats(store) == 1


def test_a_failed_heartbeat_fails_the_check_and_is_kept_for_the_interval(
    store: SqlStore,
) -> None:
    clock = Clock()
    with store.engine.begin() as conn:
        conn.execute(text("DROP TABLE heartbeat"))  # the write fails in the database
    probe = WriteProbe(store, 5.0, monotonic=clock, now=lambda: AT)
    first = probe.check()
    assert not first.ok and first.detail
    assert not probe.check().ok and probe.writes == 1  # not retried within the interval
    clock.now = max(clock.now, store.last_write_failure or 0) + 5.0
    assert not probe.check().ok and probe.writes == 2


def test_any_failed_write_fails_the_check_for_the_interval_whatever_the_heartbeat(
    store: SqlStore,
) -> None:
    clock = Clock()
    probe = WriteProbe(store, 5.0, monotonic=clock, now=lambda: AT)
    assert probe.check().ok
    _fail(store)
    assert store.last_write_failure is not None
    clock.now = store.last_write_failure + 1
    assert not probe.check().ok
    clock.now = store.last_write_failure + 5
    assert probe.check().ok  # no failure for the interval: a new heartbeat decides
    assert probe.writes == 2


def test_a_failed_read_is_not_a_failed_write(store: SqlStore) -> None:
    _fail(store, readonly=True)
    assert store.last_write_failure is None


@pytest.mark.parametrize(
    ("url", "directory"),
    [
        ("sqlite:////data/pki/pkiforge.db", "/data/pki"),
        ("sqlite://", None),
        ("sqlite:///:memory:", None),
        ("postgresql://root@127.0.0.1/test", None),
    ],
    ids=["sqlite-file", "memory", "memory-named", "postgresql"],
)
def test_only_a_sqlite_file_has_a_reserve(url: str, directory: str | None) -> None:
    reserve = DiskReserve.for_url(url, 1)
    assert (reserve.directory if reserve else None) == directory


def test_the_reserve_refuses_below_it_and_fails_closed(tmp_path: Path) -> None:
    DiskReserve(str(tmp_path), 0).check()
    DiskReserve(str(tmp_path), 1).check()
    with pytest.raises(StorageFull, match="storage nearly full"):
        DiskReserve(str(tmp_path), 2**62).check()
    missing = DiskReserve(str(tmp_path / "gone"), 0)
    with pytest.raises(StoreUnavailable, match="free space cannot be read") as info:
        missing.check()
    assert not isinstance(info.value, StorageFull)
    assert str(tmp_path) not in str(info.value)
    assert not missing.available()
