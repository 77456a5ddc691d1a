"""Free space under a SQLite database, and the reserve that the API keeps on it.

SQLite fails a write that needs one more page than the disk has (`database or disk is full`),
and its WAL and the checkpoints that copy it into the database file need room to finish what
was already accepted. The API therefore refuses new write work while the free space on the
database's filesystem is below `storage.min_free_bytes`: the reserve is left for writes in
flight, revocations, CRLs, bookkeeping and checkpoints, and the operator's own commands.
PostgreSQL's disk is its server's to watch: there is no reserve for it.
"""

from __future__ import annotations

import os
import shutil

from sqlalchemy.engine import make_url

from pkiforge.errors import StorageFull, StoreUnavailable
from pkiforge.store.writer_lock import sqlite_path


class DiskReserve:
    """The filesystem that holds one SQLite database, and the free bytes to keep on it."""

    def __init__(self, directory: str, reserve: int) -> None:
        self.directory = directory
        self.reserve = reserve

    @classmethod
    def for_url(cls, url: str, reserve: int) -> DiskReserve | None:
        """The reserve of a SQLite file's filesystem; None for PostgreSQL or in-memory SQLite."""
        parsed = make_url(url)
        database = sqlite_path(parsed) if parsed.get_backend_name() == "sqlite" else None
        if database is None:
            return None
        return cls(os.path.dirname(os.path.abspath(database)), reserve)

    def free(self) -> int:
        """Free bytes that an unprivileged process may use (root's own reserve not counted).

        Raises:
            OSError: the directory cannot be examined.
        """
        return shutil.disk_usage(self.directory).free

    def available(self) -> bool:
        """Whether the free space is at least the reserve (False when it cannot be read)."""
        try:
            return self.free() >= self.reserve
        except OSError:
            return False

    def check(self) -> None:
        """Refuse new write work below the reserve.

        Raises:
            StorageFull: less free space than the reserve.
            StoreUnavailable: the free space cannot be read (fail closed).
        """
        try:
            free = self.free()
        except OSError:
            raise StoreUnavailable("storage unavailable: free space cannot be read") from None
        if free < self.reserve:
            raise StorageFull(
                "storage nearly full: the server takes no new writes until space is freed"
            )
