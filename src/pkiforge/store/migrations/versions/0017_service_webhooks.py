"""services' own webhooks, and room in `deliveries.endpoint` for `service:` + a service id

Revision ID: 0017
Revises: 0016

A service's webhook (its URL and Standard Webhooks secret) lives beside its registry entry;
deliveries to it are named `service:` + the service id (up to 128 characters), which the
endpoint column now holds.
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "service_webhooks",
        sa.Column(
            "service_id",
            sa.String(128),
            sa.ForeignKey("services.service_id"),
            primary_key=True,
        ),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    with op.batch_alter_table("deliveries") as batch:
        batch.alter_column(
            "endpoint", type_=sa.String(160), existing_type=sa.String(128), existing_nullable=False
        )


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.alter_column(
            "endpoint", type_=sa.String(128), existing_type=sa.String(160), existing_nullable=False
        )
    op.drop_table("service_webhooks")
