"""Commits on disk before they are answered, with one sync of the WAL for many commits.

With `synchronous=FULL` SQLite syncs the WAL inside every commit, while the commit holds the
writer lock: under load each sync also waited for the checkpointer's sync of the database file
(ext4 orders them), and both workers waited for that, which cost a third of the issuance rate.
A server can get the same guarantee (nothing it answered is lost to a power failure) more
cheaply. Its commits use `synchronous=NORMAL`, which writes the WAL without syncing it, and a
request that committed has its answer held until a sync of the WAL file that began after its
commit has finished. That sync runs in a thread, outside the writer lock. Requests that commit
while one sync runs share the next one.

Only the WAL needs the sync: SQLite writes a commit's pages there. Before it reuses the WAL
from its start, it has checkpointed every frame into the database file and synced that file,
so a commit whose frames were overwritten is already on disk. SQLite takes no POSIX lock on the
WAL file (only on the database and `-shm` files), so opening and closing it here cannot drop
one of SQLite's locks, which closing a descriptor of a locked file would.

`track()` marks the current request; `SqlStore` calls `committed()` after each write commit.
The marker is a mutable object in a context variable, so a commit made in a worker thread
(which runs in a copy of the request's context) still marks the request.
"""

from __future__ import annotations

import asyncio
import logging
import os
from contextvars import ContextVar, Token
from dataclasses import dataclass

from pkiforge.errors import StoreUnavailable

log = logging.getLogger(__name__)


@dataclass
class Writes:
    """Whether the request this belongs to committed a write."""

    committed: bool = False


_writes: ContextVar[Writes | None] = ContextVar("pkiforge_writes", default=None)


def track() -> tuple[Writes, Token[Writes | None]]:
    """Start noting the current context's commits; reset the token when the request ends."""
    writes = Writes()
    return writes, _writes.set(writes)


def untrack(token: Token[Writes | None]) -> None:
    _writes.reset(token)


def committed() -> None:
    """Note a write commit for the current request, if one is being tracked."""
    writes = _writes.get()
    if writes is not None:
        writes.committed = True


class WalSync:
    """Group syncs of one SQLite database's WAL file, for one event loop."""

    def __init__(self, database: str) -> None:
        self.path = f"{database}-wal"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running: asyncio.Future[None] | None = None  # the sync in progress
        self._next: asyncio.Future[None] | None = None  # the one to start after it
        self.syncs = 0  # completed, for tests and curiosity

    async def barrier(self) -> None:
        """Return once everything committed before this call is on disk.

        Raises:
            StoreUnavailable: the sync failed; the commit may not survive a power loss.
        """
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # one event loop per worker; tests run several
            self._loop, self._running, self._next = loop, None, None
        if self._running is None:
            waiting = self._start(loop)
        else:
            # the running sync may have begun before our commit: wait for the next one
            if self._next is None:
                self._next = loop.create_future()
            waiting = self._next
        # a cancelled request must not cancel a sync that others wait for
        await asyncio.shield(waiting)

    def _start(self, loop: asyncio.AbstractEventLoop) -> asyncio.Future[None]:
        running = loop.run_in_executor(None, self._sync)
        self._running = running
        running.add_done_callback(self._finished)
        return running

    def _finished(self, done: asyncio.Future[None]) -> None:
        failure = None if done.cancelled() else done.exception()  # retrieved: no warning
        if failure is not None:
            log.error("sync of the WAL failed: %s", failure)
        else:
            self.syncs += 1
        if done.get_loop() is not self._loop:
            return  # state of an event loop that is gone (a new one reset it in barrier)
        self._running = None
        queued, self._next = self._next, None
        if queued is not None:
            following = self._start(done.get_loop())
            following.add_done_callback(lambda f: _settle(queued, f))

    def _sync(self) -> None:
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


def _settle(target: asyncio.Future[None], source: asyncio.Future[None]) -> None:
    if target.done():
        return
    if source.cancelled():
        target.cancel()
    elif (exc := source.exception()) is not None:
        target.set_exception(exc)
    else:
        target.set_result(None)
