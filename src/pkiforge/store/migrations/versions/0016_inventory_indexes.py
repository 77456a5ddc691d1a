"""index the inventory's listings by issuer, service and status, newest first

Revision ID: 0016
Revises: 0015

The inventory pages with a keyset (ca/paging.py): newest first, then by serial. Filtered by
issuer, service or status, a page was found by walking the `created_at` index and testing
each row (a rare issuer or status read thousands of rows per page), or by reading all of a
service's certificates through its standing index and sorting them. With the filter's column
first and the order after it, each page is one range of an index, however deep and whatever
the skew. The status index holds only the certificates that are not active (a few): listing
the active ones newest first walks `created_at`, and a query by expiry (on active ones) is
not drawn to it away from `not_after` (SQLite, without statistics, would be). Listings by
expiry keep the `not_after` index (migration 0005) and the service's
standing index (0007).
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

_INDEXES = {
    "ix_certificates_issuer_created": ["issuer", "created_at", "serial_number"],
    "ix_certificates_service_created": ["service_id", "created_at", "serial_number"],
}
_NOT_ACTIVE = sa.text("status <> 'active'")


def upgrade() -> None:
    for name, columns in _INDEXES.items():
        op.create_index(name, "certificates", columns)
    op.create_index(
        "ix_certificates_status_created",
        "certificates",
        ["status", "created_at", "serial_number"],
        sqlite_where=_NOT_ACTIVE,
        postgresql_where=_NOT_ACTIVE,
    )


def downgrade() -> None:
    for name in [*_INDEXES, "ix_certificates_status_created"]:
        op.drop_index(name, table_name="certificates")
