"""ACME: when a challenge's validation started, so a validation lost with its process restarts

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("acme_challenges") as batch:
        batch.add_column(sa.Column("started_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    with op.batch_alter_table("acme_challenges") as batch:
        batch.drop_column("started_at")
