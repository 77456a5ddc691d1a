"""The WAL checkpointer: copies the WAL without blocking writers, syncs the database file before
the writer lock is taken, restarts the WAL under that lock, keeps it bounded while writes never
pause, and survives failures."""

from __future__ import annotations

import errno
import logging
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from pkiforge.store import checkpoint as checkpoint_module
from pkiforge.store.checkpoint import FALLBACK_PAGES, Checkpoint, WalCheckpointer
from pkiforge.store.db import SqlStore
from pkiforge.store.writer_lock import WriterLock


@pytest.fixture
def db(tmp_path: Path) -> Iterator[tuple[SqlStore, str]]:
    """A migrated SQLite store that never checkpoints by itself, and its file."""
    path = str(tmp_path / "pkiforge.db")
    store = SqlStore.open(f"sqlite:///{path}", wal_autocheckpoint=0)
    with store.transaction() as tx:
        tx.conn.execute(text("CREATE TABLE filler (id INTEGER PRIMARY KEY, data BLOB)"))
    _wal_pages(path)  # the schema is in the database file; the rows to come are not
    yield store, path
    store.close()


def _write(store: SqlStore, rows: int) -> None:
    with store.transaction() as tx:
        for _ in range(rows):
            tx.conn.execute(text("INSERT INTO filler (data) VALUES (randomblob(3000))"))


def _rows_in_database_file(path: str, tmp_path: Path) -> int:
    """Rows of `filler` in the database file alone, as if the WAL were lost."""
    copy = tmp_path / "file-only.db"
    shutil.copyfile(path, copy)
    conn = sqlite3.connect(f"file:{copy}?immutable=1", uri=True)
    try:
        return int(conn.execute("SELECT count(*) FROM filler").fetchone()[0])
    finally:
        conn.close()


def _wal_pages(path: str) -> int:
    """Frames in the WAL, from a connection of its own (a PASSIVE checkpoint reports them)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        return int(conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1])
    finally:
        conn.close()


def test_the_store_takes_the_automatic_checkpoint_it_is_given(tmp_path: Path) -> None:
    for given, expected in ((None, 1000), (FALLBACK_PAGES, FALLBACK_PAGES)):
        store = SqlStore.open(f"sqlite:///{tmp_path / 'a.db'}", wal_autocheckpoint=given)
        try:
            with store.transaction(readonly=True) as tx:
                pages = tx.conn.execute(text("PRAGMA wal_autocheckpoint")).scalar()
            assert pages == expected
        finally:
            store.close()


def test_a_round_copies_the_wal_into_the_database_file(
    db: tuple[SqlStore, str], tmp_path: Path
) -> None:
    store, path = db
    _write(store, 20)
    assert _rows_in_database_file(path, tmp_path) == 0  # only in the WAL so far
    checkpointer = WalCheckpointer(path, restart_pages=10**6)
    try:
        done = checkpointer.checkpoint()
    finally:
        checkpointer.stop()
    assert done.wal_pages > 20 and done.copied_pages == done.wal_pages
    assert not done.restarted
    assert _rows_in_database_file(path, tmp_path) == 20


def test_the_copying_pass_does_not_wait_for_writers(db: tuple[SqlStore, str]) -> None:
    store, path = db
    _write(store, 5)
    checkpointer = WalCheckpointer(path, restart_pages=10**6)
    with WriterLock(path):  # a writer holds the lock for as long as it likes
        finished = threading.Event()
        threading.Thread(target=lambda: (checkpointer.checkpoint(), finished.set())).start()
        assert finished.wait(5)
    checkpointer.stop()


def test_past_restart_pages_it_waits_for_the_writer_lock_and_the_wal_starts_again(
    db: tuple[SqlStore, str],
) -> None:
    store, path = db
    _write(store, 40)
    before = _wal_pages(path)
    checkpointer = WalCheckpointer(path, restart_pages=10)
    result: list[object] = []
    worker = threading.Thread(target=lambda: result.append(checkpointer.checkpoint()))
    with WriterLock(path):
        worker.start()
        worker.join(0.5)
        assert worker.is_alive()  # the final pass waits for the writer to finish
    worker.join(5)
    checkpointer.stop()
    [done] = result
    assert done == type(done)(wal_pages=before, copied_pages=before, restarted=True)
    _write(store, 1)  # the next writer starts the WAL from its beginning
    assert _wal_pages(path) < 10 < before


def test_the_wal_stays_bounded_while_writes_never_pause(
    db: tuple[SqlStore, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, path = db
    checkpointer = WalCheckpointer(path, interval=0.01, restart_pages=200)
    restarts: list[int] = []
    real = checkpointer.checkpoint

    def counted() -> Checkpoint:
        done = real()
        if done.restarted:
            restarts.append(done.wal_pages)
        return done

    monkeypatch.setattr(checkpointer, "checkpoint", counted)
    checkpointer.start()
    written, started = 0, time.monotonic()
    try:
        # back to back, never waiting for the checkpointer, until it has restarted the WAL ten
        # times and for 4 s at least: a slow sync of this VM's disk (up to 1.4 s seen) makes the
        # file grow meanwhile, and the longer run keeps that a small part of what is written
        while (len(restarts) < 10 or time.monotonic() - started < 4) and (
            time.monotonic() - started < 30
        ):
            _write(store, 2)  # each transaction adds about 3 pages
            written += 2
    finally:
        checkpointer.stop()
    assert len(restarts) >= 10
    wal_bytes = Path(f"{path}-wal").stat().st_size
    # never restarted, the WAL would hold every row written (3000 bytes each) and more; the file
    # keeps its largest size, which a slow sync can make several rounds' worth
    assert wal_bytes < written * 3000 / 2, (written, wal_bytes)


class _Recorder:
    """A checkpointer of `path` whose file syncs and writer lock are recorded in call order."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, path: str, restart_pages: int) -> None:
        self.checkpointer = checkpointer = WalCheckpointer(path, restart_pages=restart_pages)
        self.events: list[str] = []
        self.synced_inodes: list[int] = []
        real_sync, lock = checkpoint_module._datasync, checkpointer._lock
        recorder = self

        def sync(fd: int) -> None:
            recorder.events.append("sync")
            recorder.synced_inodes.append(os.fstat(fd).st_ino)
            real_sync(fd)

        class Lock:
            def __enter__(self) -> None:
                recorder.events.append("lock")
                lock.__enter__()

            def __exit__(self, *exc: object) -> None:
                lock.__exit__(*exc)

            def close(self) -> None:
                lock.close()

        monkeypatch.setattr(checkpoint_module, "_datasync", sync)
        monkeypatch.setattr(checkpointer, "_lock", Lock())


def test_a_round_syncs_the_database_file_it_copied_into_without_any_lock(
    db: tuple[SqlStore, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, path = db
    recorder = _Recorder(monkeypatch, path, restart_pages=10**6)
    checkpointer = recorder.checkpointer
    _write(store, 5)
    with WriterLock(path):  # the sync needs no lock: a writer holds it throughout
        done = checkpointer.checkpoint()
    assert done.copied_pages > 0
    assert recorder.events == ["sync"]
    assert recorder.synced_inodes == [os.stat(path).st_ino]  # the database file, not the WAL
    checkpointer.checkpoint()  # nothing written since: nothing to sync
    assert recorder.events == ["sync"]
    _write(store, 1)
    checkpointer.checkpoint()
    assert recorder.events == ["sync", "sync"]
    checkpointer.stop()


def test_a_round_on_an_idle_database_syncs_nothing(
    db: tuple[SqlStore, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = _Recorder(monkeypatch, db[1], restart_pages=10**6)
    checkpointer = recorder.checkpointer
    checkpointer.checkpoint()  # may sync once: it cannot know what was synced before it ran
    first = list(recorder.events)
    for _ in range(3):
        checkpointer.checkpoint()
    checkpointer.stop()
    assert recorder.events == first


def test_a_restart_round_syncs_the_file_before_it_takes_the_writer_lock(
    db: tuple[SqlStore, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, path = db
    recorder = _Recorder(monkeypatch, path, restart_pages=10)
    checkpointer = recorder.checkpointer
    _write(store, 40)
    done = checkpointer.checkpoint()
    assert done.restarted
    # the locked pass finds the copied pages already on disk: only its own few remain
    assert recorder.events == ["sync", "lock"]
    _write(store, 1)
    checkpointer.checkpoint()  # the WAL started again: its new pages are synced in turn
    assert recorder.events == ["sync", "lock", "sync"]
    checkpointer.stop()


def test_the_file_stays_open_until_stop_even_when_the_connection_is_dropped(
    db: tuple[SqlStore, str],
) -> None:
    store, path = db
    checkpointer = WalCheckpointer(path, restart_pages=10**6)
    _write(store, 2)
    checkpointer.checkpoint()
    held = checkpointer._file
    assert held is not None
    checkpointer._drop_connection()  # what a failed round does
    assert os.fstat(held).st_ino == os.stat(path).st_ino  # closing it would drop POSIX locks
    checkpointer.stop()
    assert checkpointer._file is None
    with pytest.raises(OSError):
        os.fstat(held)


def test_a_failing_sync_is_logged_and_the_thread_goes_on(
    db: tuple[SqlStore, str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store, path = db
    calls: list[int] = []

    def failing(fd: int) -> None:
        calls.append(fd)
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(checkpoint_module, "_datasync", failing)
    checkpointer = WalCheckpointer(path, interval=0.01, restart_pages=10**6)
    with caplog.at_level(logging.WARNING, logger="pkiforge.store"):
        checkpointer.start()
        deadline = time.monotonic() + 5
        while len(calls) < 2 and time.monotonic() < deadline:
            _write(store, 1)
            time.sleep(0.02)
        checkpointer.stop()
    assert len(calls) >= 2  # retried in later rounds
    expected = "syncing the database file failed, retrying with backoff up to 30s: Input/output"
    assert any(expected in r.getMessage() for r in caplog.records)


def test_a_failing_round_is_logged_and_the_thread_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    checkpointer = WalCheckpointer(str(tmp_path / "missing.db"), interval=0.01)
    with caplog.at_level(logging.WARNING, logger="pkiforge.store"):
        checkpointer.start()
        deadline = time.monotonic() + 10
        while checkpointer.backoff.failures < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        checkpointer.stop()
    assert checkpointer.backoff.failures >= 3  # retried, not given up
    failures = [r for r in caplog.records if "WAL checkpoint failed" in r.getMessage()]
    assert len(failures) == 1  # logged when it began, not in every round
    assert not (tmp_path / "missing.db").exists()  # and no empty database was made


def test_after_a_failure_the_next_round_uses_a_new_connection(
    db: tuple[SqlStore, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store, path = db
    checkpointer = WalCheckpointer(path, interval=0.01, restart_pages=10**6)
    broken = sqlite3.connect(":memory:", check_same_thread=False)
    broken.close()  # every statement on it raises sqlite3.ProgrammingError
    checkpointer._conn = broken
    _write(store, 3)
    with caplog.at_level(logging.WARNING, logger="pkiforge.store"):
        checkpointer.start()
        deadline = time.monotonic() + 5
        while checkpointer._conn in (broken, None) and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)
        checkpointer.stop()
    assert any("WAL checkpoint failed" in r.getMessage() for r in caplog.records)
    assert _rows_in_database_file(path, tmp_path) == 3  # copied over the new connection


@pytest.mark.parametrize(
    ("url", "database"),
    [
        ("sqlite:////data/pkiforge.db", "/data/pkiforge.db"),
        ("sqlite:///relative.db", "relative.db"),
        ("sqlite://", None),
        ("sqlite:///:memory:", None),
        ("postgresql://root@127.0.0.1/test", None),
    ],
    ids=["absolute", "relative", "memory", "memory-named", "postgresql"],
)
def test_only_a_sqlite_file_gets_a_checkpointer(url: str, database: str | None) -> None:
    checkpointer = WalCheckpointer.for_url(url)
    assert (checkpointer.database if checkpointer else None) == database
