"""index a service's certificates by status and expiry, not by service alone

Revision ID: 0007
Revises: 0006

Counting a service's active certificates (the whitelist's `max_certificates`, checked on every
request of a service that has one), finding its current certificate (discovery) and listing its
active ones would read every certificate the service ever had through an index on `service_id`
alone, and test each row's status and expiry. With (service_id, status, not_after) the active,
unexpired ones are one range of the index, and counting them reads nothing else.
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_certificates_service_id", table_name="certificates")
    op.create_index(
        "ix_certificates_service_standing",
        "certificates",
        ["service_id", "status", "not_after"],
    )


def downgrade() -> None:
    op.drop_index("ix_certificates_service_standing", table_name="certificates")
    op.create_index("ix_certificates_service_id", "certificates", ["service_id"], unique=False)
