"""One database transaction as the repositories see it: a Core connection, and an ORM session
made only when a repository asks for one.

The hot paths (issuance, audit, identity checks) run Core statements on the connection: the
ORM unit of work cost more than everything else an issuance does. The hottest of them go
through `run`, straight to the driver's cursor (`store/prepared.py`). The rarely used paths
keep the ORM's convenience. All run in the same transaction, and the session is flushed before
any Core or prepared statement so that they never see different states.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

from pkiforge.store.prepared import Prepared, Ran

_XACT_LOCK = text("SELECT pg_advisory_xact_lock(:k)")


class Unit:
    """The connection of one transaction and its lazily made session."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._session: Session | None = None

    @property
    def conn(self) -> Connection:
        if self._session is not None:
            self._session.flush()
        return self._conn

    @property
    def session(self) -> Session:
        if self._session is None:
            # joins the connection's transaction: savepoints for begin_nested(), and neither
            # commit nor rollback of its own (the store ends the transaction)
            self._session = Session(
                bind=self._conn,
                join_transaction_mode="conditional_savepoint",
                expire_on_commit=False,
                autoflush=True,
            )
        return self._session

    @property
    def dialect(self) -> str:
        return self._conn.dialect.name

    def run(self, statement: Prepared, values: Mapping[str, Any] | None = None) -> Ran:
        """A hot statement on this transaction's connection (see `store/prepared.py`)."""
        return statement.run(self.conn, values)

    def flush(self) -> None:
        if self._session is not None:
            self._session.flush()

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None


class Repo:
    """Base of the SQL repositories: `self.c` for Core statements, `self.s` for the ORM."""

    def __init__(self, unit: Unit) -> None:
        self.unit = unit

    @property
    def c(self) -> Connection:
        return self.unit.conn

    @property
    def s(self) -> Session:
        return self.unit.session

    def serialise(self, name: str) -> None:
        """Wait for other transactions serialised under `name` until this one ends.

        PostgreSQL: a transaction-level advisory lock, released at commit or rollback.
        SQLite needs none: its writer lock already lets one write transaction run at a time.
        """
        if self.unit.dialect == "postgresql":
            self.c.execute(_XACT_LOCK, {"k": zlib.crc32(name.encode())})
