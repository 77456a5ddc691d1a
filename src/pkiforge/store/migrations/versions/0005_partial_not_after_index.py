"""index certificates by expiry only once they have one

Revision ID: 0005
Revises: 0004

A reserved certificate has no `not_after` until it is signed. The full index stored an entry
for the NULL at reservation and removed it again at issuance: two index pages written to the
WAL per certificate, of 14, inside the one-writer-at-a-time section. Every query on expiry
compares `not_after` with a time, which implies it is not NULL, so SQLite and PostgreSQL both
use the partial index for them.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_SET = sa.text("not_after IS NOT NULL")


def upgrade() -> None:
    op.drop_index("ix_certificates_not_after", table_name="certificates")
    op.create_index(
        "ix_certificates_not_after",
        "certificates",
        ["not_after"],
        sqlite_where=_SET,
        postgresql_where=_SET,
    )


def downgrade() -> None:
    op.drop_index("ix_certificates_not_after", table_name="certificates")
    op.create_index("ix_certificates_not_after", "certificates", ["not_after"], unique=False)
