"""Migrations apply on an empty database, match the table metadata exactly, and upgrade (and
downgrade) a database that already holds certificates."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import replace
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from pkiforge.ca.models import CertStatus
from pkiforge.errors import InvalidInput, StoreUnavailable
from pkiforge.store.db import (
    SqlStore,
    _alembic_config,
    current_revision,
    head_revision,
    make_engine,
    upgrade,
)
from pkiforge.store.repos import SqlCertificateRepository
from pkiforge.store.tables import (
    Base,
    CARow,
    CertificateRow,
    CRLRow,
    RevocationRow,
    ServiceRow,
)

from .helpers import NOW, cert_record, certificate, fleet

TABLES = {"alembic_version", *Base.metadata.tables}
CORE_TABLES = {"audit_log", "cas", "certificates", "crls", "revocations", "services"}


def test_empty_database_is_migrated_to_head(store_url: str) -> None:
    engine = make_engine(store_url)
    try:
        assert current_revision(engine) is None
        assert set(inspect(engine).get_table_names()) == set()
    finally:
        engine.dispose()
    store = SqlStore.open(store_url)
    try:
        head = head_revision()
        assert head is not None
        assert current_revision(store.engine) == head
        assert set(inspect(store.engine).get_table_names()) == TABLES
        assert CORE_TABLES < TABLES
        assert upgrade(store.engine) == (head, head)  # idempotent
    finally:
        store.close()


def test_migrations_match_the_metadata(store_url: str) -> None:
    store = SqlStore.open(store_url)
    try:
        with store.engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "compare_server_default": True}
            )
            diff = compare_metadata(context, Base.metadata)
        assert diff == []
    finally:
        store.close()


def test_downgrade_to_base_removes_every_table(store_url: str) -> None:
    store = SqlStore.open(store_url)
    try:
        with store.engine.begin() as conn:
            command.downgrade(_alembic_config(conn), "base")
        assert set(inspect(store.engine).get_table_names()) <= {"alembic_version"}
        assert current_revision(store.engine) is None
    finally:
        store.close()


@pytest.mark.parametrize(
    "url",
    ["mysql://u@localhost/db", "not a url at all ::", "oracle://x"],
    ids=["mysql", "garbage", "oracle"],
)
def test_unsupported_database_url(url: str) -> None:
    with pytest.raises(InvalidInput) as info:
        SqlStore.open(url)
    assert info.value.field == "database_url"


def test_unreachable_postgres_is_store_unavailable() -> None:
    with pytest.raises(StoreUnavailable) as info:
        SqlStore.open("postgresql://nobody:s3cret-pw@127.0.0.1:1/none")
    # what a client may be told names no host; the cause (for the log and the CLI) does
    assert str(info.value) == "database unavailable"
    assert info.value.internal is not None and '"127.0.0.1", port 1' in info.value.internal
    assert "s3cret-pw" not in str(info.value) and "s3cret-pw" not in info.value.internal


def _certificates_0002() -> Any:
    """`certificates` as revision 0002 left it (no metadata), for rows written before 0003."""
    return sa.table(
        "certificates",
        *(sa.column(c.name, c.type) for c in CertificateRow.__table__.c if c.name != "metadata"),
    )


def test_upgrade_from_0002_keeps_certificates_and_adds_empty_metadata(store_url: str) -> None:
    engine = make_engine(store_url)
    try:
        with engine.begin() as conn:
            command.upgrade(_alembic_config(conn), "0002")
        old = cert_record(0x1001, certificate=certificate(0x1001), fingerprint="cd" * 32)
        revoked = cert_record(0x1002, status=CertStatus.REVOKED)
        with engine.begin() as conn:
            conn.execute(
                sa.insert(CARow.__table__),
                {
                    "name": "services",
                    "kind": "intermediate",
                    "status": "active",
                    "created_at": NOW,
                    "crl_number": 0,
                },
            )
            for r in (old, revoked):
                values = SqlCertificateRepository._values(r)
                del values["metadata"]
                conn.execute(
                    sa.insert(_certificates_0002()), {"serial_number": r.serial_hex, **values}
                )
            conn.execute(
                sa.insert(RevocationRow.__table__),
                {
                    "serial_number": "1002",
                    "reason": "superseded",
                    "revoked_at": NOW,
                    "revoked_by": "t",
                },
            )
        assert current_revision(engine) == "0002"
        assert upgrade(engine) == ("0002", head_revision())
        with engine.connect() as conn:
            raw = conn.execute(sa.text("SELECT serial_number, metadata FROM certificates")).all()
        assert sorted(raw) == [("1001", None), ("1002", None)]  # SQL NULL, not JSON null
    finally:
        engine.dispose()

    store = SqlStore.open(store_url)
    try:
        with store.transaction() as tx:
            back = tx.certificates.get(0x1001)
            assert back == old and back.metadata == {}
            gone = tx.certificates.get(0x1002)
            assert gone is not None and gone.revocation is not None and gone.metadata == {}
            tx.certificates.update(replace(old, metadata={"team": "payments"}))
            tx.certificates.add(cert_record(0x1003, metadata={"n": {"a": [1, 2]}}))
        with store.transaction(readonly=True) as tx:
            assert tx.certificates.get(0x1001) == replace(old, metadata={"team": "payments"})
            third = tx.certificates.get(0x1003)
            assert third is not None and third.metadata == {"n": {"a": [1, 2]}}
        # and back: the column goes, every row (and the revocation pointing at one) stays
        with store.engine.begin() as conn:
            command.downgrade(_alembic_config(conn), "0002")
        assert current_revision(store.engine) == "0002"
        columns = {c["name"] for c in inspect(store.engine).get_columns("certificates")}
        assert "metadata" not in columns and "renewed_from" in columns
        with store.engine.connect() as conn:
            serials = conn.execute(sa.text("SELECT serial_number FROM certificates")).scalars()
            assert sorted(serials) == ["1001", "1002", "1003"]
            revs = conn.execute(sa.text("SELECT serial_number FROM revocations")).scalars()
            assert list(revs) == ["1002"]
    finally:
        store.close()


def test_the_expiry_index_holds_signed_certificates_only_and_serves_expiry_queries(
    store_url: str,
) -> None:
    """Migration 0005: reserved rows (no `not_after` yet) stay out of the expiry index, and
    the queries on expiry still use it."""
    store = SqlStore.open(store_url)
    expiring = (
        "SELECT serial_number FROM certificates WHERE status = 'active' AND not_after > :now "
        "AND not_after <= :until"
    )
    try:
        with store.engine.begin() as conn:
            if conn.dialect.name == "sqlite":
                definition = conn.execute(
                    sa.text(
                        "SELECT sql FROM sqlite_master WHERE name = 'ix_certificates_not_after'"
                    )
                ).scalar_one()
                plan = " ".join(
                    str(row[-1])
                    for row in conn.execute(
                        sa.text(f"EXPLAIN QUERY PLAN {expiring}"), {"now": NOW, "until": NOW}
                    )
                )
            else:
                definition = conn.execute(
                    sa.text(
                        "SELECT indexdef FROM pg_indexes "
                        "WHERE indexname = 'ix_certificates_not_after'"
                    )
                ).scalar_one()
                conn.execute(sa.text("SET LOCAL enable_seqscan = off"))  # a tiny table
                plan = " ".join(
                    str(row[0])
                    for row in conn.execute(
                        sa.text(f"EXPLAIN {expiring}"), {"now": NOW, "until": NOW}
                    )
                )
        assert "not_after IS NOT NULL" in definition
        assert "ix_certificates_not_after" in plan
    finally:
        store.close()


def test_upgrade_from_0005_files_the_registered_names(store_url: str) -> None:
    """Migration 0006 fills `service_names` from `services.names`, and the lookups use it."""
    engine = make_engine(store_url)
    try:
        with engine.begin() as conn:
            command.upgrade(_alembic_config(conn), "0005")
        with engine.begin() as conn:
            for service_id, names in (
                ("orders", ["DNS:orders.internal", "DNS:*.orders.internal", "IP:10.0.0.7"]),
                ("billing", ["DNS:billing.internal", "DNS:Billing.internal"]),
                ("empty", []),
            ):
                conn.execute(
                    sa.insert(ServiceRow.__table__),
                    {
                        "service_id": service_id,
                        "service_name": service_id,
                        "names": names,
                        "endpoints": [],
                        "owner": {},
                        "created_at": NOW,
                        "updated_at": NOW,
                    },
                )
        with engine.begin() as conn:
            command.upgrade(_alembic_config(conn), "head")
        store = SqlStore(engine)
        with store.transaction(readonly=True) as tx:
            assert tx.services.owners_of(["DNS:x.orders.internal", "DNS:*.orders.internal"]) == {
                "DNS:*.orders.internal": "orders"
            }
            assert tx.services.owners_of(["IP:10.0.0.7", "DNS:billing.internal"]) == {
                "IP:10.0.0.7": "orders",
                "DNS:billing.internal": "billing",  # two spellings of one name: filed once
            }
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM service_names")).scalar_one() == 4
        store.close()
        with engine.begin() as conn:
            command.downgrade(_alembic_config(conn), "0005")
        assert "service_names" not in inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_a_services_active_certificates_are_one_range_of_its_index(store_url: str) -> None:
    """Migration 0007: the quota count reads the (service, status, expiry) index alone, and
    discovery's query for a service's current certificate uses it too."""
    store = SqlStore.open(store_url)
    fleet(store, 2000)  # PostgreSQL's choice between indexes on an empty table is a toss
    count = (
        "SELECT count(*) FROM certificates WHERE service_id = :s AND status = 'active' "
        "AND not_after > :now"
    )
    current = (
        "SELECT * FROM certificates WHERE service_id = :s AND status = 'active' "
        "AND not_after > :now ORDER BY created_at DESC LIMIT 1"
    )
    try:
        with store.engine.begin() as conn:
            sqlite = conn.dialect.name == "sqlite"
            if not sqlite:
                conn.execute(sa.text("SET LOCAL enable_seqscan = off"))  # a tiny table
            plans = []
            for query in (count, current):
                explain = "EXPLAIN QUERY PLAN" if sqlite else "EXPLAIN"
                rows = conn.execute(sa.text(f"{explain} {query}"), {"s": "large-0", "now": NOW})
                plans.append(" ".join(str(row[-1] if sqlite else row[0]) for row in rows))
        assert "ix_certificates_service_standing" in plans[0], plans
        # the current one: the standing index, or (migration 0016) the one in its order
        assert re.search("ix_certificates_service_(standing|created)", plans[1]), plans
        if sqlite:
            assert "COVERING INDEX" in plans[0], plans[0]  # the count reads no table rows
        indexes = {i["name"] for i in inspect(store.engine).get_indexes("certificates")}
        assert "ix_certificates_service_standing" in indexes
        assert "ix_certificates_service_id" not in indexes
    finally:
        store.close()


def test_upgrade_from_0007_marks_crls_that_miss_revocations(store_url: str) -> None:
    """Migration 0008: a CA is marked stale from its first revocation that no CRL with a later
    thisUpdate lists; one whose CRL is newer than its revocations, or with none, is not."""
    engine = make_engine(store_url)
    hour = dt.timedelta(hours=1)
    try:
        with engine.begin() as conn:
            command.upgrade(_alembic_config(conn), "0007")
        with engine.begin() as conn:
            for name in ("listed", "missed", "never", "quiet"):
                conn.execute(
                    sa.insert(_cas_0007()),
                    {"name": name, "kind": "intermediate", "status": "active",
                     "created_at": NOW, "crl_number": 0},
                )  # fmt: skip
            # (issuer, serial, revoked at); CRLs: listed at NOW+2h, missed at NOW+1h, never none
            for issuer, serial, at in (
                ("listed", 0x2001, NOW + hour),
                ("missed", 0x2002, NOW),
                ("missed", 0x2003, NOW + 2 * hour),
                ("missed", 0x2004, NOW + 3 * hour),
                ("never", 0x2005, NOW + hour),
            ):
                record = cert_record(serial, issuer=issuer, status=CertStatus.REVOKED)
                values = SqlCertificateRepository._values(record)
                conn.execute(
                    sa.insert(CertificateRow.__table__), {"serial_number": f"{serial:x}", **values}
                )
                conn.execute(
                    sa.insert(RevocationRow.__table__),
                    {"serial_number": f"{serial:x}", "reason": "superseded", "revoked_at": at,
                     "revoked_by": "t"},
                )  # fmt: skip
            for issuer, at in (("listed", NOW + 2 * hour), ("missed", NOW + hour)):
                conn.execute(
                    sa.insert(CRLRow.__table__),
                    {"issuer": issuer, "number": 1, "this_update": at,
                     "next_update": at + 24 * hour, "der": b"x"},
                )  # fmt: skip
        with engine.begin() as conn:
            command.upgrade(_alembic_config(conn), "0008")
        store = SqlStore(engine)
        with store.transaction(readonly=True) as tx:
            marks = {name: tx.crls.state(name) for name in ("listed", "missed", "never", "quiet")}
        assert {
            name: (state.stale_since, state.last_revoked_at)
            for name, state in marks.items()
            if state
        } == {
            "listed": (None, NOW + hour),
            "missed": (NOW + 2 * hour, NOW + 3 * hour),
            "never": (NOW + hour, NOW + hour),
            "quiet": (None, None),
        }
        with engine.begin() as conn:
            command.downgrade(_alembic_config(conn), "0007")
        columns = {c["name"] for c in inspect(engine).get_columns("cas")}
        assert columns.isdisjoint({"crl_stale_since", "last_revoked_at"})
        assert "crl_number" in columns
    finally:
        engine.dispose()


def _cas_0007() -> Any:
    """`cas` as revision 0007 left it."""
    added = {"crl_stale_since", "last_revoked_at"}
    return sa.table(
        "cas", *(sa.column(c.name, c.type) for c in CARow.__table__.c if c.name not in added)
    )
