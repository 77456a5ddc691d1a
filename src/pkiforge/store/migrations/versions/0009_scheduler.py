"""scheduler leases and job state; archived certificates; renewals found by predecessor

Revision ID: 0009
Revises: 0008

`scheduler_jobs` holds one row per job: who holds its lease and until when (taken with one
conditional UPDATE, so one process runs a job at a time across replicas and workers), and what
its last run did. `certificates.archived_at` marks certificates that tidy moved out of the
inventory's queries (they stay readable by serial, and in the audit trail).
`ix_certificates_renewed_from` lets the expiry scan tell a certificate that was renewed from
one that was not without reading every certificate.
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scheduler_jobs",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("holder", sa.String(128), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_run_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_duration", sa.Float(), nullable=True),
        sa.Column("runs", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("failures", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("result", sa.JSON(), nullable=True),
    )
    with op.batch_alter_table("certificates", schema=None) as batch_op:
        batch_op.add_column(sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_certificates_renewed_from", "certificates", ["renewed_from"])


def downgrade() -> None:
    op.drop_index("ix_certificates_renewed_from", table_name="certificates")
    # as in 0008: drop in place where SQLite can (copying `certificates` would break the
    # foreign keys that point at it)
    bind = op.get_bind()
    in_place = bind.dialect.name != "sqlite" or (bind.dialect.server_version_info or ()) >= (3, 35)
    with op.batch_alter_table(
        "certificates", schema=None, recreate="never" if in_place else "auto"
    ) as batch_op:
        batch_op.drop_column("archived_at")
    op.drop_table("scheduler_jobs")
