"""certificate metadata

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # nullable, no default: existing rows read as "no metadata" and nothing is rewritten
    with op.batch_alter_table("certificates", schema=None) as batch_op:
        batch_op.add_column(sa.Column("metadata", sa.JSON(), nullable=True))


def downgrade() -> None:
    # SQLite from 3.35 drops a plain column in place; copying the table instead (batch
    # "recreate") drops `certificates`, which the revocations' foreign key refuses once a
    # certificate has been revoked, so copy only where there is no other way
    bind = op.get_bind()
    in_place = bind.dialect.name != "sqlite" or (bind.dialect.server_version_info or ()) >= (3, 35)
    with op.batch_alter_table(
        "certificates", schema=None, recreate="never" if in_place else "auto"
    ) as batch_op:
        batch_op.drop_column("metadata")
