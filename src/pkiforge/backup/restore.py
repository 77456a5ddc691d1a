"""`backup restore`: into a new data directory, all or nothing.

The archive is opened and checked in a private staging folder beside the home, the restored
store is corrected there (aftercare.py), and the folder is renamed to the home at the end: a
restore that fails leaves no home behind. With PostgreSQL as the target, the rows go in with
the schema in one transaction, just before the rename.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml
from sqlalchemy import Connection, Table, func, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import InterfaceError, OperationalError

from pkiforge.backup.aftercare import DEFAULT_MARGIN, AftercareReport, apply_aftercare
from pkiforge.backup.archive import OpenedBackup, open_backup
from pkiforge.backup.manifest import HOME, Manifest, sqlite_url
from pkiforge.backup.sealed import Secret
from pkiforge.backup.snapshot import clear_seeded, copy_rows
from pkiforge.clock import Clock, SystemClock
from pkiforge.errors import Conflict, IntegrityError, InvalidInput, StoreUnavailable
from pkiforge.settings import CONFIG_FILE
from pkiforge.store.db import SCHEMA_HEAD, SqlStore, make_engine, upgrade_in
from pkiforge.store.tables import Base

DATABASE_FILE = "pkiforge.db"


@dataclass(frozen=True)
class RestoreOptions:
    home: Path
    secret: Secret
    database_url: str | None = None  # None: the restored config's, else SQLite in the home
    crl_number_margin: int = DEFAULT_MARGIN
    crl_number_floor: int = 0


@dataclass(frozen=True)
class RestoreReport:
    manifest: Manifest
    aftercare: AftercareReport
    home: Path
    database: str  # "sqlite" or "postgresql"
    # the restored config.yaml names a database other than the one restored into
    config_names_other_database: bool = False


def restore_backup(
    path: Path, options: RestoreOptions, clock: Clock | None = None
) -> RestoreReport:
    """Restore the archive at `path` into `options.home`, which must be empty or absent.

    Raises:
        Conflict: the home or the target database is not empty (nothing is written).
        IntegrityError: the archive cannot be opened or does not check out.
        InvalidInput: a CRL number would not fit. NotFound: no such archive.
    """
    home = options.home.absolute()
    _check_home(home)
    parent = home.parent
    if not parent.is_dir():
        raise InvalidInput(f"folder {parent} does not exist; create it first", field="home")
    staging = Path(tempfile.mkdtemp(dir=parent, prefix=f".{home.name}.restore-"))
    try:
        opened = open_backup(path, options.secret, staging)
        if not opened.ok:
            raise IntegrityError(
                f"the backup does not check out: {opened.problems[0]}"
                + (f" (and {len(opened.problems) - 1} more)" if len(opened.problems) > 1 else "")
                + "; run `pkiforge backup verify`",
                field="backup",
            )
        target_home = staging / "home"
        target_home.mkdir(mode=0o700, exist_ok=True)
        _apply_modes(opened, target_home)
        url = _target_url(options.database_url, _configured_url(target_home))
        postgres = url is not None
        if postgres:
            assert url is not None
            _check_empty_database(url)
        revision = opened.manifest.schema_revision
        # revisions are numbered 0001, 0002 ...: a higher one is a newer pkiforge's
        if revision is not None and revision > SCHEMA_HEAD:
            raise Conflict(
                f"the backup's schema ({revision}) is newer than this pkiforge's "
                f"({SCHEMA_HEAD}): restore it with the version that made it "
                f"({opened.manifest.pkiforge_version}) or a later one",
                field="backup",
            )
        database = target_home / DATABASE_FILE
        os.rename(opened.database, database)
        restored_at = (clock or SystemClock()).now()
        store = SqlStore.open(sqlite_url(database))  # brings an older schema up to date
        try:
            aftercare = apply_aftercare(
                store,
                opened.manifest,
                restored_at,
                margin=options.crl_number_margin,
                floor=options.crl_number_floor,
            )
        finally:
            store.close()
        if postgres:
            assert url is not None
            _import(database, url)
            for leftover in target_home.glob(DATABASE_FILE + "*"):
                leftover.unlink()
        configured = _configured_url(target_home)
        _put_in_place(target_home, home)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return RestoreReport(
        opened.manifest,
        aftercare,
        home,
        "postgresql" if postgres else "sqlite",
        config_names_other_database=configured is not None and configured != url,
    )


def _check_home(home: Path) -> None:
    if home.exists() and (not home.is_dir() or any(home.iterdir())):
        what = "a database" if (home / DATABASE_FILE).exists() else "files"
        raise Conflict(
            f"{home} already holds {what}: restore into an empty or new data directory "
            "(nothing was written)",
            field="home",
        )


def _apply_modes(opened: OpenedBackup, target_home: Path) -> None:
    """Give the home's files (unpacked 0600) the modes the manifest gives: keys stay 0600."""
    for entry in opened.manifest.files:
        if entry.path.startswith(HOME):
            os.chmod(target_home / entry.path[len(HOME) :], entry.mode & 0o644)


def _target_url(explicit: str | None, configured: str | None) -> str | None:
    """The PostgreSQL database to restore into, None for the SQLite file in the home.

    The restored config's PostgreSQL URL counts (a database there that is not empty is
    refused); its SQLite path does not: the restore writes the home's own file, and says that
    the config names another.

    Raises:
        InvalidInput: `--database-url` names a SQLite file.
    """
    if explicit is not None:
        if _backend(explicit) != "postgresql":
            raise InvalidInput(
                "--database-url must be a PostgreSQL URL; without it the restore writes the "
                "SQLite database into the home",
                field="database_url",
            )
        return explicit
    if configured is not None and _backend(configured) == "postgresql":
        return configured
    return None


def _backend(url: str) -> str | None:
    try:
        return make_url(url).get_backend_name()
    except Exception:  # not a URL SQLAlchemy can parse: no database of ours
        return None


def _configured_url(home: Path) -> str | None:
    config = home / CONFIG_FILE
    if not config.is_file():
        return None
    try:
        data = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError:
        return None
    url = data.get("database_url") if isinstance(data, dict) else None
    return str(url) if url else None


def _check_empty_database(url: str) -> None:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            tables = set(inspect(conn).get_table_names())
    except (OperationalError, InterfaceError):
        raise StoreUnavailable("the target database cannot be reached") from None
    finally:
        engine.dispose()
    ours = tables & ({t.name for t in Base.metadata.sorted_tables} | {"alembic_version"})
    if ours:
        raise Conflict(
            "the target database already holds pkiforge tables "
            f"({', '.join(sorted(ours)[:3])}...): restore into an empty database "
            "(nothing was written)",
            field="database_url",
        )


def _import(database: Path, url: str) -> None:
    """Schema and rows into PostgreSQL in one transaction: all of it, or nothing."""
    source = make_engine(sqlite_url(database))
    target = make_engine(url)
    try:
        with source.connect() as src, target.begin() as out:
            upgrade_in(out)
            clear_seeded(out)
            for table in Base.metadata.sorted_tables:
                copy_rows(src, table, out)
                _move_sequences(out, table)
    except (OperationalError, InterfaceError):
        raise StoreUnavailable("the target database failed during the import") from None
    finally:
        source.dispose()
        target.dispose()


def _move_sequences(conn: Connection, table: Table) -> None:
    """Rows came in with their ids: a serial column's sequence must continue after them."""
    for column in table.primary_key.columns:
        if column.autoincrement is not True:
            continue
        seq = conn.execute(
            text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": table.name, "c": column.name}
        ).scalar()
        if seq:
            top = conn.execute(select(func.max(column))).scalar()
            if top is not None:
                conn.execute(text("SELECT setval(:s, :v)"), {"s": seq, "v": top})


def _put_in_place(staged: Path, home: Path) -> None:
    if home.exists():
        home.rmdir()  # empty, as checked; refuses if something appeared since
    os.rename(staged, home)
