"""store/durable: a write commit returns only after a sync of the WAL that began after it."""

from __future__ import annotations

import errno
import itertools
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import text

from pkiforge.errors import StoreUnavailable
from pkiforge.store.db import SqlStore
from pkiforge.store.durable import WalSync


def _open(tmp_path: Path) -> SqlStore:
    database = tmp_path / "pkiforge.db"
    made = SqlStore.open(f"sqlite:///{database}", durable=WalSync(str(database)))
    with made.transaction() as tx:
        tx.conn.execute(text("CREATE TABLE t (x INTEGER)"))
    return made


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    made = _open(tmp_path)
    yield made
    made.close()


def _write(store: SqlStore, value: int) -> None:
    with store.transaction() as tx:
        tx.conn.execute(text("INSERT INTO t VALUES (:x)"), {"x": value})


def _committed(store: SqlStore) -> set[int]:
    """The values committed so far, read on a connection of its own."""
    other = sqlite3.connect(str(store.engine.url.database))
    try:
        return {x for (x,) in other.execute("SELECT x FROM t")}
    finally:
        other.close()


@dataclass
class _Sync:
    """One sync the fake ran: what was committed when it began, and when (in `tick`s) it
    began and ended."""

    saw: set[int]
    began: int
    ended: int | None = None


@dataclass
class _Recorder:
    """Stand-in for WalSync._sync that records every sync against one sequence of events."""

    store: SqlStore
    gates: list[threading.Event] = field(default_factory=list)  # sync n waits for gates[n]
    failures: dict[int, Exception] = field(default_factory=dict)
    pause: float = 0.0
    syncs: list[_Sync] = field(default_factory=list)
    returned: dict[int, int] = field(default_factory=dict)  # value -> tick its write returned
    _ticks: Iterator[int] = field(default_factory=itertools.count)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def tick(self) -> int:
        with self._lock:
            return next(self._ticks)

    def __call__(self) -> None:
        n = len(self.syncs)
        this = _Sync(_committed(self.store), self.tick())
        self.syncs.append(this)
        if n < len(self.gates):
            assert self.gates[n].wait(10), "gate never opened"
        time.sleep(self.pause)
        this.ended = self.tick()
        if n in self.failures:
            raise self.failures[n]

    def write(self, value: int) -> None:
        _write(self.store, value)
        self.returned[value] = self.tick()

    def check_every_write_was_synced_before_it_returned(self) -> None:
        for value, returned in self.returned.items():
            covering = [
                s
                for s in self.syncs
                if value in s.saw and s.ended is not None and s.ended < returned
            ]
            assert covering, f"write {value} returned before any sync that began after it ended"


@pytest.fixture
def recorder(store: SqlStore, monkeypatch: pytest.MonkeyPatch) -> _Recorder:
    assert store.durable is not None
    made = _Recorder(store)
    monkeypatch.setattr(store.durable, "_sync", made)
    return made


def _threads(target: Callable[[int], None], values: range) -> list[threading.Thread]:
    started = [threading.Thread(target=target, args=(v,)) for v in values]
    for t in started:
        t.start()
    return started


def _until(condition: Callable[[], bool], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


def test_the_wal_file_of_the_database_is_what_gets_synced(
    store: SqlStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real = os.fdatasync

    def recording(fd: int) -> None:
        synced.append(os.fstat(fd).st_ino)
        real(fd)

    monkeypatch.setattr(os, "fdatasync", recording)
    _write(store, 1)
    assert synced == [(tmp_path / "pkiforge.db-wal").stat().st_ino]


def test_reads_and_rolled_back_writes_wait_for_no_sync(
    store: SqlStore, recorder: _Recorder
) -> None:
    with store.transaction(readonly=True) as tx:
        tx.conn.execute(text("SELECT count(*) FROM t"))
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.conn.execute(text("INSERT INTO t VALUES (2)"))
        raise RuntimeError("abandon")
    assert recorder.syncs == []
    recorder.write(3)
    assert len(recorder.syncs) == 1
    recorder.check_every_write_was_synced_before_it_returned()


def test_a_commit_made_while_a_sync_runs_waits_for_the_next_one(
    store: SqlStore, recorder: _Recorder
) -> None:
    recorder.gates = [threading.Event(), threading.Event()]
    first = _threads(recorder.write, range(1, 2))
    _until(lambda: len(recorder.syncs) == 1)  # sync 0 runs, held at its gate
    second = _threads(recorder.write, range(2, 3))
    _until(lambda: 2 in _committed(store))
    recorder.gates[0].set()  # sync 0 ends; it began before write 2 committed
    first[0].join(10)
    assert 1 in recorder.returned
    _until(lambda: len(recorder.syncs) == 2)
    time.sleep(0.05)
    assert 2 not in recorder.returned  # only sync 1 covers write 2
    recorder.gates[1].set()
    second[0].join(10)
    assert recorder.returned.keys() == {1, 2} and len(recorder.syncs) == 2
    recorder.check_every_write_was_synced_before_it_returned()


def test_commits_that_wait_together_share_one_sync(store: SqlStore, recorder: _Recorder) -> None:
    recorder.gates = [threading.Event()]
    first = _threads(recorder.write, range(1, 2))
    _until(lambda: len(recorder.syncs) == 1)
    rest = _threads(recorder.write, range(2, 22))
    _until(lambda: len(_committed(store)) == 21)
    time.sleep(0.1)  # let the 20 committed writers reach their wait
    recorder.gates[0].set()
    for t in first + rest:
        t.join(10)
    assert len(recorder.returned) == 21
    assert len(recorder.syncs) == 2  # sync 0 for write 1, one shared sync for the other 20
    recorder.check_every_write_was_synced_before_it_returned()


def test_many_threads_writing_at_once_are_each_synced_and_share_syncs(
    store: SqlStore, recorder: _Recorder
) -> None:
    recorder.pause = 0.002
    writers = _threads(lambda n: [recorder.write(n * 100 + i) for i in range(10)], range(8))
    for t in writers:
        t.join(30)
    assert len(recorder.returned) == 80
    recorder.check_every_write_was_synced_before_it_returned()
    assert len(recorder.syncs) < 80


def test_a_failed_sync_fails_its_commits_and_the_next_one_is_tried_afresh(
    store: SqlStore, recorder: _Recorder
) -> None:
    assert store.durable is not None
    before = store.durable.syncs
    recorder.failures[0] = StoreUnavailable("sync of the WAL failed: Input/output error")
    with pytest.raises(StoreUnavailable, match="Input/output error"):
        recorder.write(1)
    assert 1 not in recorder.returned
    recorder.write(2)
    assert len(recorder.syncs) == 2 and 2 in recorder.returned
    assert store.durable.syncs == before + 1  # the failed one does not count


def test_a_disk_error_is_a_store_error_naming_no_path(
    store: SqlStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(fd: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO), str(tmp_path / "pkiforge.db-wal"))

    monkeypatch.setattr(os, "fdatasync", failing)
    with pytest.raises(StoreUnavailable, match="Input/output error") as info:
        _write(store, 1)
    assert str(tmp_path) not in str(info.value)


def test_no_wal_file_means_nothing_is_left_to_sync(tmp_path: Path) -> None:
    # SQLite removes the WAL only after checkpointing all of it into a synced database file
    sync = WalSync(str(tmp_path / "absent.db"))
    sync.barrier()
    assert sync.syncs == 1


def test_each_wait_is_reported(store: SqlStore, recorder: _Recorder) -> None:
    waits: list[float] = []
    assert store.durable is not None
    store.durable.on_wait = waits.append
    recorder.write(1)
    recorder.write(2)
    assert len(waits) == 2 and all(w >= 0 for w in waits)


def test_without_a_wal_sync_a_commit_waits_for_nothing(tmp_path: Path) -> None:
    plain = SqlStore.open(f"sqlite:///{tmp_path / 'pkiforge.db'}")
    try:
        assert plain.durable is None
        with plain.transaction() as tx:
            tx.conn.execute(text("CREATE TABLE t (x INTEGER)"))
    finally:
        plain.close()


def test_a_commit_that_need_not_be_durable_waits_for_no_sync_and_the_next_one_covers_it(
    store: SqlStore, recorder: _Recorder
) -> None:
    with store.transaction(durable=False) as tx:
        tx.conn.execute(text("INSERT INTO t VALUES (1)"))
    assert recorder.syncs == []
    recorder.write(2)
    assert len(recorder.syncs) == 1
    assert {1, 2} <= recorder.syncs[0].saw
    recorder.check_every_write_was_synced_before_it_returned()
