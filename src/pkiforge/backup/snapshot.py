"""A consistent copy of the database while the server runs, and the data directory's files.

SQLite: the online backup API (`sqlite3.Connection.backup`) copies every page in one step under
a read transaction; in WAL mode writers go on meanwhile and the copy is the database as of one
commit. PostgreSQL: every pkiforge table read in one REPEATABLE READ, read-only transaction
(one snapshot of the whole database) and written into a SQLite file made by the same migrations,
so an archive always carries one SQLite file, whichever database it came from.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import InterfaceError, OperationalError

from pkiforge.backup.manifest import safe_member
from pkiforge.errors import Conflict, NotFound, StoreUnavailable
from pkiforge.passphrase import STORED
from pkiforge.store.db import SCHEMA_HEAD, make_engine, upgrade
from pkiforge.store.tables import Base
from pkiforge.store.writer_lock import sqlite_path
from pkiforge.whitelist import WHITELIST_FILE

BATCH = 5000
CONFIG_FILES = ("config.yaml", WHITELIST_FILE)
SERVER_FILES = ("server/tls.pem", "server/tls.key", "server/client-cas.pem")
PASSPHRASE_FILE = STORED.as_posix()  # what `init` generates, when it does


def snapshot_database(url: str, dest: Path) -> str:
    """Copy the database at `url` into the new SQLite file `dest`; return the source backend.

    Raises:
        NotFound: no SQLite database at that path. StoreUnavailable: PostgreSQL cannot be
        reached. Conflict: its schema is not the one this version writes.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        source = sqlite_path(parsed)
        if source is None or not Path(source).is_file():
            raise NotFound(f"no pkiforge database at {source}", field="database")
        _sqlite_copy(Path(source), dest)
        return "sqlite"
    _postgres_copy(url, dest)
    return "postgresql"


def _sqlite_copy(source: Path, dest: Path) -> None:
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    dst = sqlite3.connect(dest)
    try:
        src.backup(dst)  # pages=-1: all pages in one step, one read transaction
        # one self-contained file in the archive; the store turns WAL on again when opened
        dst.execute("PRAGMA journal_mode=DELETE")
    finally:
        dst.close()
        src.close()


def _postgres_copy(url: str, dest: Path) -> None:
    source = make_engine(url)
    target = make_engine(f"sqlite:///{dest.resolve()}")
    try:
        upgrade(target)  # the schema as the migrations make it, alembic_version included
        with _snapshot(source) as conn, target.begin() as out:
            revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
            if revision != SCHEMA_HEAD:
                raise Conflict(
                    f"the database's schema is at {revision}, this pkiforge writes {SCHEMA_HEAD}:"
                    " back it up with the version that runs it",
                    field="database",
                )
            clear_seeded(out)
            for table in Base.metadata.sorted_tables:
                copy_rows(conn, table, out)
    finally:
        target.dispose()
        source.dispose()


@contextmanager
def _snapshot(engine: Engine) -> Iterator[Connection]:
    """A connection in one REPEATABLE READ, read-only transaction: one view of every table."""
    try:
        conn = engine.connect().execution_options(
            isolation_level="REPEATABLE READ", postgresql_readonly=True
        )
    except (OperationalError, InterfaceError) as exc:
        raise StoreUnavailable(f"database unavailable: {type(exc).__name__}") from None
    try:
        with conn.begin() as tx:
            yield conn
            tx.rollback()  # it wrote nothing
    finally:
        conn.close()


def clear_seeded(target: Connection) -> None:
    """Empty a freshly migrated database: rows its migrations seed (the readiness heartbeat)
    would collide with the same rows copied from the source."""
    for table in reversed(Base.metadata.sorted_tables):
        target.execute(table.delete())


def copy_rows(source: Connection, table: Table, target: Connection) -> int:
    """Copy every row of `table` in batches; times are written as UTC; return the count."""
    total = 0
    batch: list[dict[str, Any]] = []
    for row in _rows(source, table):
        batch.append({k: _utc(v) for k, v in row.items()})
        if len(batch) >= BATCH:
            target.execute(insert(table), batch)
            total += len(batch)
            batch = []
    if batch:
        target.execute(insert(table), batch)
        total += len(batch)
    return total


def _rows(conn: Connection, table: Table) -> Iterator[dict[str, Any]]:
    result = conn.execution_options(yield_per=BATCH).execute(select(table))
    for row in result.mappings():
        yield dict(row)


def _utc(value: Any) -> Any:
    # SQLite keeps the wall time and drops the offset: an aware time must be in UTC first;
    # PostgreSQL takes a naive time (as SQLite returns them) in its session zone: make it UTC
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)
    return value


@dataclass(frozen=True)
class HomeFile:
    """A file of the data directory to keep: its path in the home, and where to read it."""

    relative: str
    source: Path


def home_files(
    home: Path, key_refs: list[tuple[str, str | None]], *, passphrase: bool
) -> tuple[list[HomeFile], list[str]]:
    """The data directory's files a restore needs, and the CA keys it does not hold.

    Configuration, whitelist, every file under `ca/` (the CA keys, encrypted), the keys the
    database names elsewhere in the home, the server's TLS files; the CA passphrase only when
    asked for. The database's own files are not here: `snapshot_database` copies them.
    """
    home = home.resolve()
    found: dict[str, Path] = {}
    for name in (*CONFIG_FILES, *SERVER_FILES):
        if (home / name).is_file():
            found[name] = home / name
    if (home / "ca").is_dir():
        for path in sorted((home / "ca").rglob("*")):
            if path.is_file():
                found[path.relative_to(home).as_posix()] = path
    outside: list[str] = []
    for name, ref in key_refs:
        if ref is None:
            outside.append(f"{name} (offline)")
            continue
        scheme, _, location = ref.partition(":")
        if scheme != "file":
            outside.append(ref)  # another key backend keeps it: nothing to copy
            continue
        path = (home / location).resolve()
        if not path.is_relative_to(home):
            outside.append(str(path))
        elif path.is_file():
            found.setdefault(path.relative_to(home).as_posix(), path)
        else:
            outside.append(f"{path} (missing)")
    if passphrase and (home / PASSPHRASE_FILE).is_file():
        found[PASSPHRASE_FILE] = home / PASSPHRASE_FILE
    return [HomeFile(k, v) for k, v in sorted(found.items())], sorted(outside)


@dataclass(frozen=True)
class Reference:
    """A file the home's settings name (`what` says which setting, e.g. `webhook 'ops'
    secret_file`); a relative path is relative to the home."""

    what: str
    path: Path


def referenced_files(home: Path, references: list[Reference]) -> tuple[list[HomeFile], list[str]]:
    """The referenced files inside the home (to keep), and those a backup cannot hold, each
    named by its setting: outside the home (a restore could not put it back where the
    settings say without writing outside its new home), missing, or with a name the archive
    refuses."""
    home = home.resolve()
    found: list[HomeFile] = []
    left_out: list[str] = []
    for ref in references:
        path = (home / ref.path).resolve()  # an absolute path stays as it is
        if not path.is_relative_to(home):
            left_out.append(f"{ref.what}: {path} (outside the home)")
            continue
        relative = path.relative_to(home).as_posix()
        if not path.is_file():
            left_out.append(f"{ref.what}: {path} (missing)")
        elif not safe_member(relative):
            left_out.append(f"{ref.what}: {path} (a name the archive does not hold)")
        else:
            found.append(HomeFile(relative, path))
    return found, left_out
