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

A commit made by a thread waits for the sync in that thread (`barrier`). A coroutine that runs
core calls can instead open `deferred()` around them: commits made inside only note that a
sync is owed, and the coroutine awaits `settle()` before it uses their result, so no thread
sits blocked while the disk works. The guarantee is the same (nothing is answered before its
commit is on disk); who waits is what differs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from pkiforge.errors import StoreUnavailable

log = logging.getLogger(__name__)


class _Round:
    """One sync of the WAL: whether it has finished, and why it failed if it did."""

    __slots__ = ("done", "failure")

    def __init__(self) -> None:
        self.done = False
        self.failure: str | None = None


class Deferred:
    """Whether commits made while this was current still wait for a sync of the WAL."""

    __slots__ = ("owed",)

    def __init__(self) -> None:
        self.owed = False


# set by `deferred()`; copied into worker threads with the rest of the context, so a commit
# in a thread that a deferring coroutine started marks the coroutine's `Deferred`
_current: ContextVar[Deferred | None] = ContextVar("pkiforge_deferred_sync", default=None)


@contextmanager
def deferred() -> Iterator[Deferred]:
    """Within it, durable commits leave their sync owed instead of waiting for it in place.

    The caller must `await WalSync.settle()` when the result says `owed`, before anything
    reports those commits as done.
    """
    mine = Deferred()
    token = _current.set(mine)
    try:
        yield mine
    finally:
        _current.reset(token)


class WalSync:
    """Shared syncs of one SQLite database's WAL file, for the threads of one process."""

    def __init__(self, database: str) -> None:
        self.path = f"{database}-wal"
        self._cond = threading.Condition()
        self._running: _Round | None = None  # the sync in progress
        self._next: _Round | None = None  # the one to start after it, with its waiters
        self.syncs = 0  # completed, for tests and curiosity
        self.failed_at: float | None = None  # when (time.monotonic) a sync last failed
        # called with the seconds each `barrier` waited (the API's metric), if set
        self.on_wait: Callable[[float], None] | None = None
        # `settle`'s rounds, on the event loop of the process (futures of the loop's thread)
        self._async_running: asyncio.Future[None] | None = None
        self._async_next: asyncio.Future[None] | None = None

    def committed(self) -> None:
        """After a durable commit: wait for its sync here, or leave it owed (`deferred`).

        Raises:
            StoreUnavailable: the sync failed (only when waiting here).
        """
        owner = _current.get()
        if owner is not None:
            owner.owed = True
        else:
            self.barrier()

    async def settle(self) -> None:
        """Return once everything committed before this call is on disk, without a thread
        waiting: coroutines of one event loop share the syncs, as threads share `barrier`'s.

        Raises:
            StoreUnavailable: the sync failed; the commit may not survive a power loss.
        """
        start = time.perf_counter()
        loop = asyncio.get_running_loop()
        if self._async_next is None:
            self._async_next = loop.create_future()
        mine = self._async_next
        if self._async_running is None:
            self._start_async(loop)
        try:
            # shielded: a cancelled waiter must not cancel the round others wait for
            await asyncio.shield(mine)
        finally:
            if self.on_wait is not None:
                self.on_wait(time.perf_counter() - start)

    def _start_async(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the waiting round's sync in the loop's executor; the next waits for it."""
        round_, self._async_next = self._async_next, None
        assert round_ is not None
        running = loop.run_in_executor(None, self._sync)
        self._async_running = running

        def finished(done: asyncio.Future[None]) -> None:
            self._async_running = None
            failure = done.exception()
            if failure is None:
                self.syncs += 1
                round_.set_result(None)
            else:
                self.failed_at = time.monotonic()
                if isinstance(failure, StoreUnavailable):
                    log.error("%s; the commits waiting for it fail", failure)
                round_.set_exception(failure)
                round_.exception()  # retrieved here too: its waiters may all be cancelled
            if self._async_next is not None:
                self._start_async(loop)

        running.add_done_callback(finished)

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
            self.failed_at = time.monotonic()
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
