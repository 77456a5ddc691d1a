"""delta CRLs

Revision ID: 0010
Revises: 0009

`delta_crls` holds each issuer's delta CRLs (RFC 5280 §5.2.4): the full CRL each completes
(`base_number`), and the issuer's newest revocation when it was signed, which tells a server
that the delta is missing a later one.
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "delta_crls",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("issuer", sa.String(length=63), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("base_number", sa.Integer(), nullable=False),
        sa.Column("this_update", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_update", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("der", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["issuer"], ["cas.name"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("issuer", "number"),
    )


def downgrade() -> None:
    op.drop_table("delta_crls")
