"""Alembic environment: run with the connection that `store.db.upgrade` passes in."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from pkiforge.store.tables import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `pkiforge db upgrade`")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    if connection.dialect.name == "postgresql":
        # two replicas starting at once must not both migrate
        connection.execute(text("SELECT pg_advisory_xact_lock(7206534001)"))
    context.run_migrations()
