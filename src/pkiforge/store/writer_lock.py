"""One SQLite writer at a time, across the threads and processes that share a database file."""

from __future__ import annotations

import fcntl
import os
import threading

from sqlalchemy.engine import URL


def sqlite_path(url: URL) -> str | None:
    """The database file of a SQLite URL; None for an in-memory database."""
    database = url.database
    return database if database and database != ":memory:" else None


class WriterLock:
    """A thread lock in this process and `flock` on `<database>.writer-lock` across processes.

    SQLite's own busy handler polls with sleeps of up to 100 ms, which turns lock contention
    between request threads into long tail latencies; these locks wake waiters at once.
    Each instance opens its own descriptor, so two instances in one process also exclude each
    other (flock locks belong to the open file, not to the process).
    """

    def __init__(self, database: str | None) -> None:
        self._path = f"{database}.writer-lock" if database else None
        self._thread_lock = threading.Lock()
        self._fd: int | None = None

    def __enter__(self) -> None:
        self._thread_lock.acquire()
        if self._path is not None:
            try:
                if self._fd is None:
                    self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
                fcntl.flock(self._fd, fcntl.LOCK_EX)
            except BaseException:
                self._thread_lock.release()
                raise

    def __exit__(self, *exc: object) -> None:
        try:
            if self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()

    def close(self) -> None:
        """Close the lock file (the lock must not be held)."""
        with self._thread_lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
