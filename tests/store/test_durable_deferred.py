"""store/durable: inside `deferred()`, commits leave their sync owed and coroutines `settle` it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import anyio.to_thread
import pytest
from sqlalchemy import text

from pkiforge.errors import StoreUnavailable
from pkiforge.store.db import SqlStore
from pkiforge.store.durable import WalSync, deferred

from .test_durable import _committed, _open, _Recorder, _write


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    made = _open(tmp_path)
    yield made
    made.close()


@pytest.fixture
def recorder(store: SqlStore, monkeypatch: pytest.MonkeyPatch) -> _Recorder:
    assert store.durable is not None
    made = _Recorder(store)
    monkeypatch.setattr(store.durable, "_sync", made)
    return made


def _wal(store: SqlStore) -> WalSync:
    assert store.durable is not None
    return store.durable


async def _until(condition: object, seconds: float = 10) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not condition():  # type: ignore[operator]
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.005)


async def test_a_deferred_commit_owes_its_sync_and_settle_pays_it(
    store: SqlStore, recorder: _Recorder
) -> None:
    with deferred() as sync:
        _write(store, 1)
    assert sync.owed and recorder.syncs == []  # committed, nothing waited
    await _wal(store).settle()
    assert len(recorder.syncs) == 1 and 1 in recorder.syncs[0].saw


async def test_reads_and_undeferred_paths_owe_nothing(store: SqlStore, recorder: _Recorder) -> None:
    with deferred() as sync, store.transaction(readonly=True) as tx:
        tx.conn.execute(text("SELECT count(*) FROM t"))
    assert not sync.owed
    _write(store, 1)  # no deferred(): the thread waits for its own sync
    assert len(recorder.syncs) == 1


async def test_a_commit_in_a_worker_thread_owes_its_sync_to_the_coroutine(
    store: SqlStore, recorder: _Recorder
) -> None:
    with deferred() as sync:
        await anyio.to_thread.run_sync(_write, store, 1)
    assert sync.owed and recorder.syncs == []


async def test_settle_waits_for_a_sync_that_began_after_it_was_called(
    store: SqlStore, recorder: _Recorder
) -> None:
    recorder.gates = [threading.Event(), threading.Event()]
    with deferred():
        _write(store, 1)
    first = asyncio.create_task(_wal(store).settle())
    await _until(lambda: len(recorder.syncs) == 1)  # sync 0 runs, held at its gate
    with deferred():
        _write(store, 2)
    second = asyncio.create_task(_wal(store).settle())
    recorder.gates[0].set()
    await first
    await _until(lambda: len(recorder.syncs) == 2)
    await asyncio.sleep(0.05)
    assert not second.done()  # sync 0 began before write 2: only sync 1 covers it
    assert 2 not in recorder.syncs[0].saw and 2 in recorder.syncs[1].saw
    recorder.gates[1].set()
    await second


async def test_coroutines_that_settle_together_share_one_sync(
    store: SqlStore, recorder: _Recorder
) -> None:
    recorder.gates = [threading.Event()]
    first = asyncio.create_task(_wal(store).settle())
    await _until(lambda: len(recorder.syncs) == 1)
    for value in range(2, 22):
        with deferred():
            _write(store, value)
    rest = [asyncio.create_task(_wal(store).settle()) for _ in range(20)]
    recorder.gates[0].set()
    await asyncio.gather(first, *rest)
    assert len(recorder.syncs) == 2  # sync 0, and one shared by the 20 that came during it
    assert set(range(2, 22)) <= recorder.syncs[1].saw == _committed(store)


async def test_a_failed_sync_fails_its_waiters_and_the_next_is_tried_afresh(
    store: SqlStore, recorder: _Recorder
) -> None:
    recorder.gates = [threading.Event()]
    recorder.failures[1] = StoreUnavailable("sync of the WAL failed: Input/output error")
    first = asyncio.create_task(_wal(store).settle())
    await _until(lambda: len(recorder.syncs) == 1)  # sync 0 held; the waiters join sync 1
    waiters = [asyncio.create_task(_wal(store).settle()) for _ in range(3)]
    await asyncio.sleep(0)
    recorder.gates[0].set()
    await first
    results = await asyncio.gather(*waiters, return_exceptions=True)
    assert all(isinstance(r, StoreUnavailable) for r in results), results
    before = _wal(store).syncs
    await _wal(store).settle()
    assert len(recorder.syncs) == 3 and _wal(store).syncs == before + 1


async def test_a_cancelled_waiter_does_not_cancel_the_sync_others_wait_for(
    store: SqlStore, recorder: _Recorder
) -> None:
    recorder.gates = [threading.Event()]
    leaving = asyncio.create_task(_wal(store).settle())
    staying = asyncio.create_task(_wal(store).settle())
    await _until(lambda: len(recorder.syncs) == 1)
    leaving.cancel()
    recorder.gates[0].set()
    await staying
    assert leaving.cancelled() and recorder.syncs[0].ended is not None


async def test_each_settle_is_reported(store: SqlStore, recorder: _Recorder) -> None:
    waits: list[float] = []
    _wal(store).on_wait = waits.append
    await _wal(store).settle()
    await _wal(store).settle()
    assert len(waits) == 2 and all(w >= 0 for w in waits)
