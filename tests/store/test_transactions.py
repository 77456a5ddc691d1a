"""SQLite transactions lock as asked and leave the pooled connections clean."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from pkiforge.ca.models import CertificateQuery
from pkiforge.errors import Conflict
from pkiforge.store.db import SqlStore

from .helpers import ca, cert_record


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SqlStore]:
    store = SqlStore.open(f"sqlite:///{tmp_path / 'pkiforge.db'}")
    yield store
    store.close()


def _driver(tx: object) -> object:
    return tx.conn.connection.driver_connection  # type: ignore[attr-defined]


def _other_writer_can_start(path: str) -> bool:
    """Whether another connection gets the write lock at once (no IMMEDIATE transaction held)."""
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError as exc:
        assert "locked" in str(exc)
        return False
    finally:
        other.close()


def test_readonly_and_write_transactions_still_lock_as_asked(sqlite_store: SqlStore) -> None:
    path = str(sqlite_store.engine.url.database)
    for _ in range(2):  # the same connection, alternating
        with sqlite_store.transaction() as tx:
            tx.conn.execute(text("SELECT 1"))
            assert not _other_writer_can_start(path)  # BEGIN IMMEDIATE: the write lock is ours
        with sqlite_store.transaction(readonly=True) as tx:
            tx.conn.execute(text("SELECT 1"))
            assert _other_writer_can_start(path)  # plain BEGIN: writers are not held up
    assert _other_writer_can_start(path)  # and nothing is left open between transactions


def test_a_refused_transaction_leaves_the_connection_clean(sqlite_store: SqlStore) -> None:
    with sqlite_store.transaction() as tx:
        tx.cas.add(ca("services"))
    with pytest.raises(Conflict), sqlite_store.transaction() as tx:
        tx.certificates.add(cert_record(0x101))
        tx.certificates.add(cert_record(0x101))  # the serial is taken: Conflict
    with sqlite_store.transaction() as tx:
        assert tx.certificates.search(CertificateQuery()) == []  # the first add rolled back
        tx.certificates.add(cert_record(0x102))
    with sqlite_store.transaction(readonly=True) as tx:
        assert [r.serial for r in tx.certificates.search(CertificateQuery())] == [0x102]


def test_a_broken_connection_is_not_reused(sqlite_store: SqlStore) -> None:
    with pytest.raises(RuntimeError), sqlite_store.transaction() as tx:
        broken = _driver(tx)
        tx.conn.invalidate()  # as SQLAlchemy does when the driver reports a lost connection
        raise RuntimeError("the statement that lost it")
    with sqlite_store.transaction() as tx:
        assert _driver(tx) is not broken
        tx.conn.execute(text("SELECT 1"))
