"""Prepared statements give what `Connection.execute` gives, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError, InvalidRequestError

from pkiforge.store.db import SqlStore
from pkiforge.store.prepared import Prepared

META = MetaData()
THINGS = Table(
    "prepared_things",
    META,
    Column("id", Integer, primary_key=True),
    Column("name", String(32), nullable=False),
    Column("at", DateTime(timezone=False)),
    Column("doc", JSON),
    Column("flag", Boolean, nullable=False),
)
AT = dt.datetime(2026, 3, 1, 9, 30, 15, 250000)
ROWS = [
    {"id": 1, "name": "a", "at": AT, "doc": {"names": ["x", "y"], "n": 2}, "flag": True},
    {"id": 2, "name": "b", "at": None, "doc": None, "flag": False},
    {"id": 3, "name": "c", "at": AT + dt.timedelta(days=1), "doc": [1, "two"], "flag": True},
]
INSERT = Prepared(insert(THINGS))
SELECT_ALL = Prepared(select(THINGS).order_by(THINGS.c.id))
SELECT_ONE = Prepared(select(THINGS.c.name, THINGS.c.doc).where(THINGS.c.id == bindparam("b_id")))
NEWEST = Prepared(select(THINGS).order_by(THINGS.c.id.desc()).limit(1))
RENAME = Prepared(update(THINGS).where(THINGS.c.flag == bindparam("b_flag")).values(name="z"))
RETURNING = Prepared(insert(THINGS).returning(THINGS.c.id, THINGS.c.at))


@pytest.fixture
def things(store: SqlStore) -> SqlStore:
    META.create_all(store.engine)
    with store.transaction() as tx:
        for row in ROWS:
            tx.run(INSERT, row)
    return store


def test_rows_match_what_execute_returns(things: SqlStore) -> None:
    with things.transaction(readonly=True) as tx:
        expected = [tuple(r) for r in tx.conn.execute(select(THINGS).order_by(THINGS.c.id))]
        got = tx.run(SELECT_ALL).rows
    assert [tuple(r) for r in got] == expected
    assert [tuple(r) for r in got] == [tuple(r.values()) for r in ROWS]
    assert got[0].doc == {"names": ["x", "y"], "n": 2} and got[0].at == AT
    assert got[1].at is None and got[1].doc is None and got[1].flag is False


def test_binds_limits_and_first(things: SqlStore) -> None:
    with things.transaction(readonly=True) as tx:
        one = tx.run(SELECT_ONE, {"b_id": 3}).first()
        newest = tx.run(NEWEST).first()
        missing = tx.run(SELECT_ONE, {"b_id": 99})
    assert (one.name, one.doc) == ("c", [1, "two"])
    assert newest.id == 3 and newest.at == AT + dt.timedelta(days=1)
    assert missing.rows == [] and missing.first() is None
    with pytest.raises(InvalidRequestError, match="b_id"), things.transaction() as tx:
        tx.run(SELECT_ONE, {"b_other": 3})


def test_rowcount_and_returning(things: SqlStore) -> None:
    with things.transaction() as tx:
        assert tx.run(RENAME, {"b_flag": True}).rowcount == 2
        returned = tx.run(
            RETURNING, {"id": 4, "name": "d", "at": AT, "doc": {}, "flag": False}
        ).first()
        # the same statement with other keys compiles again rather than reusing the first
        partial = tx.run(RETURNING, {"id": 5, "name": "e", "flag": True}).first()
    assert (returned.id, returned.at) == (4, AT)
    assert (partial.id, partial.at) == (5, None)
    with things.transaction(readonly=True) as tx:
        names = [r.name for r in tx.run(SELECT_ALL).rows]
    assert names == ["z", "b", "z", "d", "e"]


def test_driver_errors_are_sqlalchemys_and_roll_back(things: SqlStore) -> None:
    with pytest.raises(IntegrityError), things.transaction() as tx:
        tx.run(INSERT, {"id": 9, "name": "new", "flag": True})
        tx.run(INSERT, {"id": 1, "name": "duplicate", "flag": True})
    with things.transaction(readonly=True) as tx:
        assert [r.id for r in tx.run(SELECT_ALL).rows] == [1, 2, 3]
