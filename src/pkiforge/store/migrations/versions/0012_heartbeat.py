"""a heartbeat row that readiness updates to prove the database takes writes

Revision ID: 0012
Revises: 0011

`/readyz` proves that the database takes writes by updating this one row in a write
transaction of its own, at most once per `storage.write_probe_seconds` (store/health.py). The
row is made here, so that replicas never race to insert it.
"""

import datetime as dt

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "heartbeat",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("beat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("beats", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.bulk_insert(table, [{"id": 1, "beat_at": dt.datetime.now(dt.UTC), "beats": 0}])


def downgrade() -> None:
    op.drop_table("heartbeat")
