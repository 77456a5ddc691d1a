"""Group commit for SQLite: a write commit returns once a sync of the WAL has made it durable.

SQLite's `synchronous=FULL` syncs the WAL inside every commit, while the commit holds the
writer lock, so every other writer waits for that sync too. The store can give the same
guarantee (a commit that returned survives a power loss) more cheaply: its connections commit
with `synchronous=NORMAL`, which writes the WAL without syncing it, and then the committing
thread waits, outside the writer lock, until a sync of the WAL file that began after its commit
has finished. Commits that come while one sync runs share the next one, as PostgreSQL's group
commit shares a WAL flush.

Only the WAL needs the sync: SQLite writes a commit's pages there. Before it reuses the WAL
from its start, it has checkpointed every frame into the database file and synced that file,
so a commit whose frames were overwritten is already on disk. SQLite takes no POSIX lock on the
WAL file (only on the database and `-shm` files), so opening and closing it here cannot drop
one of SQLite's locks, which closing a descriptor of a locked file would.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

from pkiforge.errors import StoreUnavailable

log = logging.getLogger(__name__)


class _Round:
    """One sync of the WAL: whether it has finished, and why it failed if it did."""

    __slots__ = ("done", "failure")

    def __init__(self) -> None:
        self.done = False
        self.failure: str | None = None


class WalSync:
    """Shared syncs of one SQLite database's WAL file, for the threads of one process."""

    def __init__(self, database: str) -> None:
        self.path = f"{database}-wal"
        self._cond = threading.Condition()
        self._running: _Round | None = None  # the sync in progress
        self._next: _Round | None = None  # the one to start after it, with its waiters
        self.syncs = 0  # completed, for tests and curiosity
        # called with the seconds each `barrier` waited (the API's metric), if set
        self.on_wait: Callable[[float], None] | None = None

    def barrier(self) -> None:
        """Return once everything committed before this call is on disk.

        The caller joins the next sync to start: the one in progress may have begun before its
        commit. Whichever waiter finds no sync running starts the next one in its own thread.

        Raises:
            StoreUnavailable: the sync failed; the commit may not survive a power loss.
        """
        start = time.perf_counter()
        with self._cond:
            if self._next is None:
                self._next = _Round()
            mine = self._next
            while not mine.done:
                if self._running is None:
                    self._lead(mine)
                else:
                    self._cond.wait()
        if self.on_wait is not None:
            self.on_wait(time.perf_counter() - start)
        if mine.failure is not None:
            raise StoreUnavailable(mine.failure)

    def _lead(self, round_: _Round) -> None:
        """Run `round_`'s sync; called holding the condition, which it releases meanwhile."""
        self._running, self._next = round_, None
        self._cond.release()
        failure = None
        try:
            self._sync()
        except StoreUnavailable as exc:
            failure = str(exc)
            log.error("%s; the commits waiting for it fail", failure)
        except BaseException:
            failure = "sync of the WAL failed"
            raise
        finally:
            self._cond.acquire()
            round_.done, round_.failure = True, failure
            if failure is None:
                self.syncs += 1
            self._running = None
            self._cond.notify_all()

    def _sync(self) -> None:
        """Sync the WAL file to disk.

        Raises:
            StoreUnavailable: it could not be opened or synced (the message names no path).
        """
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            # no WAL: SQLite removes it only after checkpointing it all and syncing the
            # database file, so every commit is already there
            return
        except OSError as exc:
            raise StoreUnavailable(f"cannot open the WAL to sync it: {exc.strerror}") from None
        try:
            os.fdatasync(fd)
        except OSError as exc:
            raise StoreUnavailable(f"sync of the WAL failed: {exc.strerror}") from None
        finally:
            os.close(fd)
