"""mark each CA's CRL stale from the first revocation it does not list

Revision ID: 0008
Revises: 0007

Serving a CRL checks `cas.crl_stale_since` and `cas.last_revoked_at` (one row by primary key)
instead of comparing the revocations with the newest CRL. Each revocation sets the first unless
it is set already, and the second; each CRL clears the first. Existing CAs are marked from
their first revocation that no CRL with a later thisUpdate can list (thisUpdate has whole
seconds: a revocation in the CRL's own second counts as unlisted, which costs at most one CRL
more).
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_cas = sa.table(
    "cas",
    sa.column("name"),
    sa.column("crl_stale_since", sa.DateTime(True)),
    sa.column("last_revoked_at", sa.DateTime(True)),
)
_certificates = sa.table("certificates", sa.column("serial_number"), sa.column("issuer"))
_revocations = sa.table(
    "revocations", sa.column("serial_number"), sa.column("revoked_at", sa.DateTime(True))
)
_crls = sa.table("crls", sa.column("issuer"), sa.column("this_update", sa.DateTime(True)))


def upgrade() -> None:
    with op.batch_alter_table("cas", schema=None) as batch_op:
        batch_op.add_column(sa.Column("crl_stale_since", sa.DateTime(timezone=True)))
        batch_op.add_column(sa.Column("last_revoked_at", sa.DateTime(timezone=True)))
    issued_here = _revocations.join(
        _certificates, _certificates.c.serial_number == _revocations.c.serial_number
    )
    listed = (
        sa.select(_crls.c.issuer)
        .where(_crls.c.issuer == _cas.c.name, _crls.c.this_update > _revocations.c.revoked_at)
        .correlate(_cas, _revocations)
        .exists()
    )
    first_unlisted = (
        sa.select(sa.func.min(_revocations.c.revoked_at))
        .select_from(issued_here)
        .where(_certificates.c.issuer == _cas.c.name, ~listed)
        .scalar_subquery()
    )
    newest = (
        sa.select(sa.func.max(_revocations.c.revoked_at))
        .select_from(issued_here)
        .where(_certificates.c.issuer == _cas.c.name)
        .scalar_subquery()
    )
    op.execute(_cas.update().values(crl_stale_since=first_unlisted, last_revoked_at=newest))


def downgrade() -> None:
    # as in 0003: drop in place where SQLite can (copying `cas` would break the foreign keys
    # that point at it)
    bind = op.get_bind()
    in_place = bind.dialect.name != "sqlite" or (bind.dialect.server_version_info or ()) >= (3, 35)
    with op.batch_alter_table(
        "cas", schema=None, recreate="never" if in_place else "auto"
    ) as batch_op:
        batch_op.drop_column("last_revoked_at")
        batch_op.drop_column("crl_stale_since")
