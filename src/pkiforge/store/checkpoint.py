"""SQLite WAL checkpoints off the request path, while `pkiforge serve` runs.

By default SQLite checkpoints in the connection whose commit takes the WAL past 1000 pages:
that commit copies the pages into the database file and syncs it while holding the writer
lock, so every other writer waits for that copy and sync too. While the server runs, a thread
does that work instead:

- every `interval` (INTERVAL) a PASSIVE checkpoint copies and syncs what the WAL holds,
  without taking any lock; requests go on writing meanwhile;
- then, if that pass copied anything, the database file is synced too, still without a lock
  (see below);
- once the WAL is past `restart_pages` (RESTART_PAGES), one more PASSIVE checkpoint copies
  the few pages written since, this time holding the writer lock, so that the WAL is copied to
  its end and the next writer starts it again from the beginning. SQLite reuses the WAL file
  only then: without this step the WAL grows without bound under a steady load. Under a light
  load a round finds nothing written meanwhile, and the WAL restarts without any lock taken.

Why the database file is synced in every round: SQLite syncs it only in a pass that copies the
WAL to its very end, and under load the unlocked passes never do (some request always reads an
older snapshot). Without these syncs the locked pass would write out everything copied since
the last restart while every writer waits; synced a round at a time beforehand, outside the
lock, the locked pass has little left to write. The sync only writes out pages SQLite has
already copied; what SQLite syncs and when is unchanged.

The serving processes raise their own automatic checkpoint to FALLBACK_PAGES, so the WAL stays
bounded even if this thread stops. A failed round never stops the server: it is retried after a
wait that doubles with each failure in a row, up to BACKOFF_CAP (a full disk fails every round
until space is freed, and each round costs a connection and I/O), and the first success returns
to `interval`. The failure is logged when it begins, again every REMIND_EVERY while it lasts,
and the recovery once. PostgreSQL needs none of this. What the thread buys is in
docs/performance.md.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

from sqlalchemy.engine import make_url

from pkiforge.store.writer_lock import WriterLock, sqlite_path

log = logging.getLogger("pkiforge.store")
# The WAL size (pages of 4 KiB) at which the WAL is restarted: 64 MiB. Every writer waits for
# the locked pass, so it is kept rare, while the WAL file stays a bounded size.
RESTART_PAGES = 16384
# what a serving process's own automatic checkpoint is raised to: 128 MiB
FALLBACK_PAGES = 2 * RESTART_PAGES
# Seconds between rounds. Each round's syncs slow the requests that overlap them, so small
# syncs often keep the tail shorter than large ones rarely (docs/performance.md).
INTERVAL = 0.1
# the longest wait between rounds while they fail, and how often a lasting failure is logged
BACKOFF_CAP = 30.0
REMIND_EVERY = 300.0
# macOS has no fdatasync; fsync does the same and more
_datasync = getattr(os, "fdatasync", os.fsync)


@dataclass(frozen=True)
class Checkpoint:
    """One round: the WAL's size in pages, how many of them are now in the database file, and
    whether the writer lock was taken so that the next writer restarts the WAL."""

    wal_pages: int
    copied_pages: int
    restarted: bool


class Backoff:
    """The wait before the next round, and the log lines, as rounds fail and recover."""

    def __init__(
        self,
        interval: float,
        cap: float = BACKOFF_CAP,
        remind_every: float = REMIND_EVERY,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = interval
        self.cap = max(cap, interval)
        self.remind_every = remind_every
        self._monotonic = monotonic
        self.failures = 0  # rounds failed in a row
        self._logged = 0.0  # when the failure was last logged

    def succeeded(self) -> float:
        """The wait after a round that worked."""
        if self.failures:
            log.info("WAL checkpoint works again after %d failed rounds", self.failures)
        self.failures = 0
        return self.interval

    def failed(self, what: str, reason: str) -> float:
        """The wait after a failed round; `what` failed because of `reason` (no data in it)."""
        self.failures += 1
        # the exponent stops growing at the cap: 2.0**1024 would overflow after hours of failure
        delay = min(self.cap, self.interval * 2.0 ** min(self.failures, 64))
        now = self._monotonic()
        if self.failures == 1:
            log.warning("%s failed, retrying with backoff up to %gs: %s", what, self.cap, reason)
            self._logged = now
        elif now - self._logged >= self.remind_every:
            log.warning("%s still failing after %d rounds: %s", what, self.failures, reason)
            self._logged = now
        return delay


class WalCheckpointer:
    """Checkpoints one SQLite database's WAL from a thread of its own."""

    def __init__(
        self, database: str, *, interval: float = INTERVAL, restart_pages: int = RESTART_PAGES
    ) -> None:
        self.database = database
        self.interval = interval
        self.restart_pages = restart_pages
        self._lock = WriterLock(database)
        self._conn: sqlite3.Connection | None = None
        # The database file, opened once to sync it and closed only by `stop`: closing any
        # descriptor of a file drops every POSIX lock this process holds on it, SQLite's
        # included (other connections of this process keep a shared lock on it in WAL mode).
        self._file: int | None = None
        self._synced = (0, 0)  # (wal_pages, copied_pages) when the file was last synced
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.backoff = Backoff(interval)

    @classmethod
    def for_url(
        cls, url: str, *, interval: float = INTERVAL, restart_pages: int = RESTART_PAGES
    ) -> WalCheckpointer | None:
        """A checkpointer for a SQLite file URL; None for PostgreSQL or an in-memory database."""
        parsed = make_url(url)
        database = sqlite_path(parsed) if parsed.get_backend_name() == "sqlite" else None
        if database is None:
            return None
        return cls(database, interval=interval, restart_pages=restart_pages)

    def checkpoint(self) -> Checkpoint:
        """One round, as the module docstring describes.

        Raises:
            sqlite3.Error: the database could not be checkpointed.
            OSError: the database file could not be synced.
        """
        conn = self._connection()
        wal, copied = self._passive(conn)
        if copied and (wal, copied) != self._synced:
            self._sync_file()
            self._synced = (wal, copied)
        if wal < self.restart_pages:
            return Checkpoint(wal, copied, restarted=False)
        self._passive(conn)  # what was written during the first pass: the locked pass stays short
        with self._lock:
            wal, copied = self._passive(conn)
        self._synced = (wal, copied)  # the locked pass copied to the end, and SQLite synced
        return Checkpoint(wal, copied, restarted=True)

    def start(self) -> None:
        """Run `checkpoint` every `interval` seconds in a daemon thread until `stop`."""
        self._thread = threading.Thread(target=self._loop, name="wal-checkpoint", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (after a round in progress), close the connection and the file.

        Call it when the process is done with the database: closing the file drops the POSIX
        locks the process holds on it (see `__init__`).
        """
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._drop_connection()
        if self._file is not None:
            os.close(self._file)
            self._file = None
        self._lock.close()

    def _loop(self) -> None:
        delay = self.interval
        while not self._stop.wait(delay):
            delay = self._round()

    def _round(self) -> float:
        """One round; the wait before the next."""
        try:
            self.checkpoint()
        except sqlite3.Error as exc:
            self._drop_connection()  # the next round starts from a new one
            # the message names the database condition (busy, I/O error), never data
            return self.backoff.failed("WAL checkpoint", str(exc))
        except OSError as exc:  # the sync of the database file; SQLite syncs it anyway
            return self.backoff.failed("syncing the database file", str(exc.strerror))
        return self.backoff.succeeded()

    def _sync_file(self) -> None:
        """Write what the passes copied into the database file out to disk.

        Raises:
            OSError: the file could not be opened or synced.
        """
        if self._file is None:
            self._file = os.open(self.database, os.O_RDONLY)  # not inherited (PEP 446)
        _datasync(self._file)

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):  # a broken connection may not close cleanly
                conn.close()

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            # mode=rw: a missing database is an error here, not a new empty file
            conn = sqlite3.connect(
                f"file:{quote(self.database)}?mode=rw",
                uri=True,
                isolation_level=None,
                check_same_thread=False,
            )
            # the same durability as the serving connections: the checkpoint syncs the WAL
            # before copying and the database file after
            conn.execute("PRAGMA synchronous=NORMAL")
            self._conn = conn
        return self._conn

    @staticmethod
    def _passive(conn: sqlite3.Connection) -> tuple[int, int]:
        # (busy, pages in the WAL, pages copied); PASSIVE never waits for readers or writers.
        # A database not in WAL mode answers -1 for both: nothing to do.
        _busy, wal, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return max(0, int(wal)), max(0, int(copied))
