"""ACME: external account binding keys, accounts, orders, authorizations, challenges, nonces

Revision ID: 0014
Revises: 0013

The ACME server's state (api/acme/, store/acme_repos.py), shared by every replica on one
database: a nonce issued by one replica is spent on another exactly once.
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "acme_external_keys",
        sa.Column("kid", sa.String(64), primary_key=True),
        sa.Column("service_id", sa.String(128), nullable=False),
        sa.Column("mac_key", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("account_id", sa.String(64)),
    )
    op.create_index("ix_acme_external_keys_service_id", "acme_external_keys", ["service_id"])
    op.create_table(
        "acme_accounts",
        sa.Column("account_id", sa.String(64), primary_key=True),
        sa.Column("thumbprint", sa.String(64), nullable=False, unique=True),
        sa.Column("jwk", sa.JSON(), nullable=False),
        sa.Column("service_id", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("contact", sa.JSON(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("eab_kid", sa.String(64)),
    )
    op.create_index("ix_acme_accounts_service_id", "acme_accounts", ["service_id"])
    op.create_table(
        "acme_orders",
        sa.Column("order_id", sa.String(64), primary_key=True),
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("identifiers", sa.JSON(), nullable=False),
        sa.Column("authz_ids", sa.JSON(), nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("issuer", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("certificate_serial", sa.String(40)),
        sa.Column("error", sa.JSON()),
    )
    op.create_index("ix_acme_orders_account_id", "acme_orders", ["account_id"])
    op.create_index("ix_acme_orders_certificate_serial", "acme_orders", ["certificate_serial"])
    op.create_table(
        "acme_authorizations",
        sa.Column("authz_id", sa.String(64), primary_key=True),
        sa.Column("order_id", sa.String(64), nullable=False),
        sa.Column("identifier_type", sa.String(16), nullable=False),
        sa.Column("identifier_value", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("expires_at", TS, nullable=False),
    )
    op.create_index("ix_acme_authorizations_order_id", "acme_authorizations", ["order_id"])
    op.create_table(
        "acme_challenges",
        sa.Column("challenge_id", sa.String(64), primary_key=True),
        sa.Column("authz_id", sa.String(64), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("token", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("validated_at", TS),
        sa.Column("error", sa.JSON()),
    )
    op.create_index("ix_acme_challenges_authz_id", "acme_challenges", ["authz_id"])
    op.create_table(
        "acme_nonces",
        sa.Column("nonce", sa.String(64), primary_key=True),
        sa.Column("expires_at", TS, nullable=False),
    )
    op.create_index("ix_acme_nonces_expires_at", "acme_nonces", ["expires_at"])


def downgrade() -> None:
    for table in (
        "acme_nonces",
        "acme_challenges",
        "acme_authorizations",
        "acme_orders",
        "acme_accounts",
        "acme_external_keys",
    ):
        op.drop_table(table)
