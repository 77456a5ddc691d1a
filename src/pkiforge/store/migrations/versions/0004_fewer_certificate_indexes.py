"""drop the certificate indexes on issuer and status

Revision ID: 0004
Revises: 0003

Every issuance writes each index of `certificates` twice (the reserved row, then the issued
one), inside the one-writer-at-a-time section. Issuer and status have a handful of values
each, so these two indexes rarely narrow a query and cost every write; listing by service, by
expiry and by recency keep theirs.
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_certificates_issuer", table_name="certificates")
    op.drop_index("ix_certificates_status", table_name="certificates")


def downgrade() -> None:
    op.create_index("ix_certificates_status", "certificates", ["status"], unique=False)
    op.create_index("ix_certificates_issuer", "certificates", ["issuer"], unique=False)
