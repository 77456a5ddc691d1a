"""Engine, transactions and migrations: SQLite (WAL) by default, PostgreSQL by URL."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Literal, get_args

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from pkiforge.errors import InvalidInput, StoreUnavailable
from pkiforge.store.durable import WalSync
from pkiforge.store.maintenance_repos import SqlMaintenanceRepository
from pkiforge.store.ocsp_repos import SqlOCSPRepository
from pkiforge.store.outbox_repos import SqlOutboxRepository
from pkiforge.store.registry_repos import (
    SqlServiceRepository,
    SqlServiceWebhookRepository,
    SqlTokenRepository,
)
from pkiforge.store.repos import (
    SqlAuditRepository,
    SqlCARepository,
    SqlCertificateRepository,
    SqlCRLRepository,
)
from pkiforge.store.unit import Unit
from pkiforge.store.writer_lock import WriterLock, sqlite_path

MIGRATIONS = Path(__file__).parent / "migrations"
# the newest revision in migrations/versions; a test keeps this equal to alembic's head, so
# opening a store needs one query instead of importing alembic (slow to import, for every CLI
# command)
SCHEMA_HEAD = "0017"
READONLY = "pkiforge_readonly"
Synchronous = Literal["normal", "full"]  # PRAGMA synchronous, in lower case


def make_engine(
    url: str, *, wal_autocheckpoint: int | None = None, synchronous: Synchronous = "normal"
) -> Engine:
    """Create an engine; SQLite gets WAL, foreign keys and writer-serialising transactions.

    `wal_autocheckpoint` (SQLite only): the WAL size in pages at which a committing connection
    checkpoints; None keeps SQLite's 1000 (see store/checkpoint.py for when to raise it).
    `synchronous` (SQLite only): "full" syncs the WAL in every commit, so a commit survives a
    power loss; "normal" syncs it only when it is checkpointed (a commit survives a crash of
    the process, not always of the machine) or when a `WalSync` given to `SqlStore` does.

    Raises:
        InvalidInput: unsupported URL.
    """
    try:
        parsed = make_url(url)
    except Exception:
        raise InvalidInput("database URL cannot be parsed", field="database_url") from None
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite":
        if synchronous not in get_args(Synchronous):
            raise InvalidInput(
                f"sqlite_synchronous must be one of {', '.join(get_args(Synchronous))}",
                field="sqlite_synchronous",
            )
        engine = create_engine(parsed, connect_args={"timeout": 30})
        _sqlite_pragmas(engine, wal_autocheckpoint, synchronous)
        return engine
    if parsed.get_backend_name() != "postgresql":
        raise InvalidInput("database URL must be sqlite:/// or postgresql://", field="database_url")
    return create_engine(parsed, pool_pre_ping=True)


def _sqlite_pragmas(
    engine: Engine, wal_autocheckpoint: int | None, synchronous: Synchronous
) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # let us emit BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA synchronous={synchronous.upper()}")
        if wal_autocheckpoint is not None:
            cur.execute(f"PRAGMA wal_autocheckpoint={int(wal_autocheckpoint)}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        # readers never block in WAL mode; writers take the lock up front, so read-then-write
        # (audit chain, CRL numbers) is serialised instead of failing on upgrade
        readonly = conn.get_execution_options().get(READONLY, False)
        # straight to the driver, past exec_driver_sql's execution context and events: every
        # transaction runs this
        conn.connection.driver_connection.execute("BEGIN" if readonly else "BEGIN IMMEDIATE")


def _alembic_config(connection: Any) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def current_revision(engine: Engine) -> str | None:
    """The schema revision recorded in the database (None when empty)."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def head_revision() -> str | None:
    """The newest migration, as alembic sees it."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config(None)).get_current_head()


def upgrade(engine: Engine) -> tuple[str | None, str | None]:
    """Bring the schema to the newest migration; return (before, after)."""
    from alembic import command

    before = current_revision(engine)
    with engine.begin() as conn:
        command.upgrade(_alembic_config(conn), "head")
    return before, current_revision(engine)


def upgrade_in(conn: Connection) -> None:
    """Bring the schema to the newest migration inside the caller's transaction (PostgreSQL's
    DDL is transactional: a restore creates the schema and its rows in one)."""
    from alembic import command

    command.upgrade(_alembic_config(conn), "head")


class SqlTransaction(Unit):
    """The repositories of one transaction; see `SqlStore.transaction`."""

    def __init__(self, conn: Connection) -> None:
        super().__init__(conn)
        self.cas = SqlCARepository(self)
        self.certificates = SqlCertificateRepository(self)
        self.crls = SqlCRLRepository(self)
        self.ocsp = SqlOCSPRepository(self)
        self.audit = SqlAuditRepository(self)
        self.services = SqlServiceRepository(self)
        self.tokens = SqlTokenRepository(self)
        self.maintenance = SqlMaintenanceRepository(self)
        self.outbox = SqlOutboxRepository(self)
        self.service_webhooks = SqlServiceWebhookRepository(self)


class SqlStore:
    """The `Store` port over SQLAlchemy.

    `durable` (SQLite with `synchronous=NORMAL`): each write transaction, once committed, waits
    for a sync of the WAL that began after its commit (store/durable.py) before it returns, or
    inside `durable.deferred()` leaves that wait to the coroutine that opened it.
    """

    def __init__(self, engine: Engine, durable: WalSync | None = None) -> None:
        self.engine = engine
        sqlite = engine.dialect.name == "sqlite"
        self._writers = WriterLock(sqlite_path(engine.url)) if sqlite else None
        self.durable = durable
        # when (time.monotonic) a write transaction last failed in the database
        self._write_failed_at: float | None = None

    @classmethod
    def open(
        cls,
        url: str,
        *,
        migrate: bool = True,
        wal_autocheckpoint: int | None = None,
        synchronous: Synchronous = "normal",
        durable: WalSync | None = None,
    ) -> SqlStore:
        """Connect, and run pending migrations on first use (`make_engine` and the class for
        the rest).

        Raises:
            StoreUnavailable: the database cannot be reached.
        """
        engine = make_engine(url, wal_autocheckpoint=wal_autocheckpoint, synchronous=synchronous)
        try:
            if migrate and current_revision(engine) != SCHEMA_HEAD:
                upgrade(engine)
        except (OperationalError, InterfaceError) as exc:
            engine.dispose()
            raise _unavailable(exc) from None
        return cls(engine, durable)

    @contextmanager
    def transaction(
        self, *, readonly: bool = False, durable: bool = True
    ) -> Iterator[SqlTransaction]:
        """Commit on normal exit, roll back on exception; `readonly` ones never wait for writers.

        `durable=False` returns without waiting for the shared sync; the next durable commit's
        sync covers it, because a sync of the WAL writes out every frame written before it.

        Raises:
            StoreUnavailable: the database failed underneath (never a partial write).
        """
        lock = self._writers if self._writers is not None and not readonly else None
        try:
            with self.engine.connect() as conn:
                conn.execution_options(**{READONLY: readonly})
                tx = SqlTransaction(conn)
                try:
                    # the writer lock covers BEGIN to COMMIT and nothing more
                    with lock or nullcontext(), conn.begin():
                        yield tx
                        tx.flush()
                finally:
                    tx.close()
        except (OperationalError, InterfaceError, sqlite3.OperationalError) as exc:
            # sqlite3's own: BEGIN goes straight to the driver (`_begin`), past SQLAlchemy
            if not readonly:
                self._write_failed_at = time.monotonic()
            raise _unavailable(exc) from None
        if durable and not readonly and self.durable is not None:
            # committed, out of the writer lock and with the connection back in the pool
            self.durable.committed()

    @property
    def last_write_failure(self) -> float | None:
        """When (`time.monotonic`) a write last failed, in the database or in the sync of the
        WAL after it; readiness (store/health.py) says not ready for a while after."""
        synced = self.durable.failed_at if self.durable is not None else None
        return max((t for t in (self._write_failed_at, synced) if t is not None), default=None)

    def close(self) -> None:
        self.engine.dispose()
        if self._writers is not None:
            self._writers.close()


DATABASE_UNAVAILABLE = "database unavailable"


def _unavailable(exc: DBAPIError | sqlite3.Error) -> StoreUnavailable:
    """The client is told only that the database is unavailable; the driver's message, which
    names the host and port (never credentials: those are in the URL), is for the log."""
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    first = str(orig).strip().splitlines()[0] if orig else type(exc).__name__
    return StoreUnavailable(DATABASE_UNAVAILABLE, internal=first)
