"""Fixtures for the store tests: a migrated SqlStore on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pkiforge.store.db import SqlStore


@pytest.fixture
def store(store_url: str) -> Iterator[SqlStore]:
    s = SqlStore.open(store_url)
    yield s
    s.close()
