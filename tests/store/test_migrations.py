"""Migrations apply on an empty database and match the table metadata exactly."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from pkiforge.errors import InvalidInput, StoreUnavailable
from pkiforge.store.db import (
    SqlStore,
    _alembic_config,
    current_revision,
    head_revision,
    make_engine,
    upgrade,
)
from pkiforge.store.tables import Base

TABLES = {"alembic_version", *Base.metadata.tables}
CORE_TABLES = {"audit_log", "cas", "certificates", "crls", "revocations", "services"}


def test_empty_database_is_migrated_to_head(store_url: str) -> None:
    engine = make_engine(store_url)
    try:
        assert current_revision(engine) is None
        assert set(inspect(engine).get_table_names()) == set()
    finally:
        engine.dispose()
    store = SqlStore.open(store_url)
    try:
        head = head_revision()
        assert head is not None
        assert current_revision(store.engine) == head
        assert set(inspect(store.engine).get_table_names()) == TABLES
        assert CORE_TABLES < TABLES
        assert upgrade(store.engine) == (head, head)  # idempotent
    finally:
        store.close()


def test_migrations_match_the_metadata(store_url: str) -> None:
    store = SqlStore.open(store_url)
    try:
        with store.engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "compare_server_default": True}
            )
            diff = compare_metadata(context, Base.metadata)
        assert diff == []
    finally:
        store.close()


def test_downgrade_to_base_removes_every_table(store_url: str) -> None:
    store = SqlStore.open(store_url)
    try:
        with store.engine.begin() as conn:
            command.downgrade(_alembic_config(conn), "base")
        assert set(inspect(store.engine).get_table_names()) <= {"alembic_version"}
        assert current_revision(store.engine) is None
    finally:
        store.close()


@pytest.mark.parametrize(
    "url",
    ["mysql://u@localhost/db", "not a url at all ::", "oracle://x"],
    ids=["mysql", "garbage", "oracle"],
)
def test_unsupported_database_url(url: str) -> None:
    with pytest.raises(InvalidInput) as info:
        SqlStore.open(url)
    assert info.value.field == "database_url"


def test_unreachable_postgres_is_store_unavailable() -> None:
    with pytest.raises(StoreUnavailable) as info:
        SqlStore.open("postgresql://nobody:s3cret-pw@127.0.0.1:1/none")
    assert str(info.value).startswith("database unavailable:")
    assert "s3cret-pw" not in str(info.value)
