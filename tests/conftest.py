"""Shared fixtures: committed test data and a throw-away PostgreSQL database per session."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

DATA = Path(__file__).parent / "data"
PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def redis_or_skip() -> redis.Redis:
    """A client for the Redis on 127.0.0.1:6379 (skips the test when there is none)."""
    client = redis.Redis(host="127.0.0.1", port=6379, socket_timeout=2)
    try:
        client.ping()
    except redis.exceptions.RedisError as exc:
        pytest.skip(f"Redis is not reachable on 127.0.0.1:6379 ({type(exc).__name__})")
    return client


def drop_prefix(client: redis.Redis, prefix: str) -> None:
    """Delete every key under `prefix` (each test run uses its own)."""
    for name in client.scan_iter(match=f"{prefix}*"):
        client.delete(name)


@pytest.fixture
def redis_client() -> Iterator[tuple[redis.Redis, str]]:
    """A Redis client and a key prefix of this test's own, emptied afterwards."""
    client = redis_or_skip()
    prefix = f"pkiforge-test-{uuid.uuid4()}:"
    yield client, prefix
    drop_prefix(client, prefix)
    client.close()


def data_file(name: str) -> bytes:
    """The bytes of a committed file under tests/data/."""
    return (DATA / name).read_bytes()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh database `pkiforge_test_<hex>` for this session, dropped at the end."""
    admin = create_engine(
        PG_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3}
    )
    name = f"pkiforge_test_{secrets.token_hex(6)}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:
        admin.dispose()
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 cannot be reached: {exc.orig}")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]
)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database URL: a new SQLite file, or a freshly emptied PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    url: str = request.getfixturevalue("postgres_url")
    _empty_postgres(url)
    yield url


def _empty_postgres(url: str) -> None:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    finally:
        engine.dispose()
