"""index the registry's names, so a certificate request reads only the ones it could clash with

Revision ID: 0006
Revises: 0005

Every certificate request checks that no other service registered a name it asks for. Reading
every service's names for that costs each request in proportion to the size of the registry;
with an index only the names that could clash are read. `service_names` holds one row per
registered name under its index key (`pkiforge.ca.name_index.pattern_key`), filled here from
`services.names` and kept with it by the repository from now on.
"""

import json

import sqlalchemy as sa
from alembic import op

from pkiforge.ca.name_index import pattern_key

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "service_names",
        sa.Column("key", sa.Text(), primary_key=True),
        sa.Column(
            "service_id",
            sa.String(128),
            sa.ForeignKey("services.service_id"),
            primary_key=True,
        ),
        sa.Column("pattern", sa.Text(), nullable=False),
    )
    rows = op.get_bind().execute(sa.text("SELECT service_id, names FROM services")).all()
    seen: set[tuple[str, str]] = set()
    values = []
    for service_id, names in rows:
        if isinstance(names, str | bytes):
            names = json.loads(names)
        for pattern in names or ():
            key = (pattern_key(str(pattern)), service_id)
            if key not in seen:
                seen.add(key)
                values.append({"key": key[0], "service_id": service_id, "pattern": str(pattern)})
    if values:
        op.bulk_insert(table, values)


def downgrade() -> None:
    op.drop_table("service_names")
