"""store/durable: a barrier returns only after a sync of the WAL that began after it was called."""

from __future__ import annotations

import asyncio
import errno
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import anyio.to_thread
import pytest
from sqlalchemy import text

from pkiforge.errors import StoreUnavailable
from pkiforge.store import durable
from pkiforge.store.db import SqlStore
from pkiforge.store.durable import WalSync


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    made = SqlStore.open(f"sqlite:///{tmp_path / 'pkiforge.db'}")
    with made.transaction() as tx:
        tx.conn.execute(text("CREATE TABLE t (x INTEGER)"))
    yield made
    made.close()


def _write(store: SqlStore, value: int) -> None:
    with store.transaction() as tx:
        tx.conn.execute(text("INSERT INTO t VALUES (:x)"), {"x": value})


class _Gated:
    """Stand-in for WalSync._sync: each call blocks until released, and records its order."""

    def __init__(self) -> None:
        self.started: list[int] = []
        self.gates: list[threading.Event] = [threading.Event() for _ in range(4)]
        self.failures: dict[int, Exception] = {}

    def open_all(self) -> None:
        for gate in self.gates:
            gate.set()

    def __call__(self) -> None:
        n = len(self.started)
        self.started.append(n)
        self.gates[n].wait(5)
        if n in self.failures:
            raise self.failures[n]


async def _until(condition: object, seconds: float = 5) -> None:
    for _ in range(int(seconds / 0.005)):
        if callable(condition) and condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not reached")


@pytest.fixture
def gated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[WalSync, _Gated]:
    """A WalSync whose syncs block until their gate is opened."""
    sync = WalSync(str(tmp_path / "db"))
    gate = _Gated()
    monkeypatch.setattr(sync, "_sync", gate)
    return sync, gate


async def _first_running(sync: WalSync, gate: _Gated) -> asyncio.Future[None]:
    """A barrier whose sync (number 0) has begun and is held at its gate."""
    first = asyncio.ensure_future(sync.barrier())
    await _until(lambda: gate.started == [0])
    return first


async def test_the_wal_file_of_the_database_is_what_gets_synced(
    store: SqlStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(store, 1)
    wal = tmp_path / "pkiforge.db-wal"
    synced: list[int] = []
    real = os.fdatasync

    def recording(fd: int) -> None:
        synced.append(os.fstat(fd).st_ino)
        real(fd)

    monkeypatch.setattr(os, "fdatasync", recording)
    sync = WalSync(str(tmp_path / "pkiforge.db"))
    await sync.barrier()
    assert synced == [wal.stat().st_ino] and sync.syncs == 1


async def test_a_barrier_waits_for_a_sync_that_began_after_it(
    gated: tuple[WalSync, _Gated],
) -> None:
    sync, gate = gated
    first = await _first_running(sync, gate)
    # this one comes while sync 0 runs: sync 0 may not cover its commit
    second = asyncio.ensure_future(sync.barrier())
    await asyncio.sleep(0.01)
    gate.gates[0].set()
    await asyncio.wait_for(first, 5)
    await _until(lambda: gate.started == [0, 1])
    await asyncio.sleep(0.02)
    assert not second.done()  # sync 0 finished, but only sync 1 counts for it
    gate.gates[1].set()
    await asyncio.wait_for(second, 5)
    assert sync.syncs == 2


async def test_barriers_that_wait_together_share_one_sync(gated: tuple[WalSync, _Gated]) -> None:
    sync, gate = gated
    first = await _first_running(sync, gate)
    rest = [asyncio.ensure_future(sync.barrier()) for _ in range(50)]
    gate.open_all()
    await asyncio.wait_for(asyncio.gather(first, *rest), 5)
    assert gate.started == [0, 1] and sync.syncs == 2


async def test_a_failed_sync_fails_its_waiters_and_the_next_one_is_tried_afresh(
    gated: tuple[WalSync, _Gated],
) -> None:
    sync, gate = gated
    gate.failures[0] = StoreUnavailable("sync of the WAL failed: Input/output error")
    gate.open_all()
    with pytest.raises(StoreUnavailable, match="Input/output error"):
        await sync.barrier()
    await sync.barrier()
    assert gate.started == [0, 1] and sync.syncs == 1


async def test_a_cancelled_waiter_does_not_cancel_the_sync_others_wait_for(
    gated: tuple[WalSync, _Gated],
) -> None:
    sync, gate = gated
    first = await _first_running(sync, gate)
    cancelled, kept = (asyncio.ensure_future(sync.barrier()) for _ in range(2))
    await asyncio.sleep(0.01)
    cancelled.cancel()
    gate.open_all()
    await asyncio.wait_for(asyncio.gather(first, kept), 5)
    assert cancelled.cancelled() and sync.syncs == 2


async def test_a_disk_error_is_a_store_error_naming_no_path(
    store: SqlStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(store, 1)

    def failing(fd: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO), str(tmp_path / "pkiforge.db-wal"))

    monkeypatch.setattr(os, "fdatasync", failing)
    with pytest.raises(StoreUnavailable, match="Input/output error") as info:
        await WalSync(str(tmp_path / "pkiforge.db")).barrier()
    assert str(tmp_path) not in str(info.value)


async def test_no_wal_file_means_nothing_is_left_to_sync(tmp_path: Path) -> None:
    # SQLite removes the WAL only after checkpointing all of it into a synced database file
    sync = WalSync(str(tmp_path / "absent.db"))
    await sync.barrier()
    assert sync.syncs == 1


def test_write_commits_mark_the_tracked_request_and_reads_do_not(store: SqlStore) -> None:
    writes, token = durable.track()
    try:
        with store.transaction(readonly=True) as tx:
            tx.conn.execute(text("SELECT count(*) FROM t"))
        assert not writes.committed
        # a rolled-back write is no commit
        with pytest.raises(RuntimeError), store.transaction() as tx:
            tx.conn.execute(text("INSERT INTO t VALUES (2)"))
            raise RuntimeError("abandon")
        assert not writes.committed
        _write(store, 3)
        assert writes.committed
    finally:
        durable.untrack(token)
    untracked = durable.Writes()
    _write(store, 4)  # outside any request: nothing to mark, nothing fails
    assert not untracked.committed


async def test_a_commit_in_a_worker_thread_marks_the_request(store: SqlStore) -> None:
    # the core runs in threads with PostgreSQL or `server.threads`: the context is a copy
    writes, token = durable.track()
    try:
        await anyio.to_thread.run_sync(_write, store, 5)
    finally:
        durable.untrack(token)
    assert writes.committed
