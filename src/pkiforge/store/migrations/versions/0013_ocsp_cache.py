"""delegated OCSP responders and cached OCSP answers

Revision ID: 0013
Revises: 0012

Each issuing CA signs a short-lived responder certificate (id-kp-OCSPSigning,
id-pkix-ocsp-nocheck) whose key, sealed under the CA passphrase, is kept here so that every
replica answers with it; answers are signed once and kept here, shared by every replica, until
the scheduler's ocsp-refresh job signs them again before their nextUpdate (ca/ocsp.py).
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    ts = sa.DateTime(timezone=True)
    op.create_table(
        "ocsp_responders",
        sa.Column("serial_number", sa.String(40), nullable=False),
        sa.Column("issuer", sa.String(63), sa.ForeignKey("cas.name"), nullable=False),
        sa.Column("not_after", ts, nullable=False),
        sa.Column("created_at", ts, nullable=False),
        sa.Column("cert_der", sa.LargeBinary(), nullable=False),
        sa.Column("sealed_key", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("serial_number"),
    )
    op.create_index("ix_ocsp_responders_issuer", "ocsp_responders", ["issuer", "not_after"])
    op.create_table(
        "ocsp_answers",
        sa.Column("serial_number", sa.String(40), nullable=False),
        sa.Column("issuer", sa.String(63), nullable=False),
        sa.Column("algorithm", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("this_update", ts, nullable=False),
        sa.Column("next_update", ts, nullable=False),
        sa.Column("der", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("serial_number", "issuer", "algorithm"),
    )
    op.create_index("ix_ocsp_answers_next_update", "ocsp_answers", ["next_update"])


def downgrade() -> None:
    op.drop_index("ix_ocsp_answers_next_update", "ocsp_answers")
    op.drop_table("ocsp_answers")
    op.drop_index("ix_ocsp_responders_issuer", "ocsp_responders")
    op.drop_table("ocsp_responders")
