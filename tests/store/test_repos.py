"""Repositories round-trip every field, filter and count, refuse duplicates, roll back."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest
from cryptography import x509
from sqlalchemy import func, select, text

from pkiforge.ca.audit import entry_hash
from pkiforge.ca.models import (
    CAKind,
    CAStatus,
    CertificateQuery,
    CertStatus,
    CRLRecord,
    CRLState,
    Revocation,
)
from pkiforge.errors import Conflict, StoreUnavailable
from pkiforge.store.db import SqlStore
from pkiforge.store.tables import AuditRow, CARow, CertificateRow, CRLRow, RevocationRow

from .helpers import DAY, NOW, PLUS_0530, append_audit, ca, cert_record, certificate


def test_ca_round_trip(store: SqlStore) -> None:
    record = ca(
        "root",
        kind=CAKind.ROOT,
        status=CAStatus.PENDING,
        certificate=certificate(),
        key_ref=None,
        created_at=dt.datetime(2026, 3, 1, 17, 30, 0, 250000, tzinfo=PLUS_0530),
        crl_number=7,
    )
    with store.transaction() as tx:
        tx.cas.add(record)
        tx.cas.add(ca("services", parent="root"))
    with store.transaction() as tx:
        back = tx.cas.get("root")
        listed = [c.name for c in tx.cas.list()]
    assert back == record
    assert back is not None and back.created_at.utcoffset() == dt.timedelta(0)
    assert back.created_at == NOW + dt.timedelta(microseconds=250000)
    assert listed == ["root", "services"]
    updated = replace(record, status=CAStatus.ACTIVE, crl_number=8, key_ref="file:x")
    with store.transaction() as tx:
        tx.cas.update(updated)
    with store.transaction() as tx:
        assert tx.cas.get("root", for_update=True) == updated
        assert tx.cas.get("nope") is None


def test_certificate_round_trip_every_field(store: SqlStore) -> None:
    cert = certificate(serial=2**158 + 12345)
    record = cert_record(
        2**158 + 12345,
        created_at=dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=-3))),
        not_before=dt.datetime(2026, 3, 1, 17, 29, tzinfo=PLUS_0530),
        not_after=NOW + 90 * DAY,
        fingerprint="ab" * 32,
        certificate=cert,
        server_generated_key=True,
        renewed_from=2**100 + 1,
        metadata={"team": "payments", "ünï": ["✓", 1, 2.5, None, True], "n": {"a": {"b": 1}}},
    )
    revocation = Revocation(
        x509.ReasonFlags.key_compromise,
        revoked_at=dt.datetime(2026, 3, 2, 1, 0, tzinfo=dt.timezone(dt.timedelta(hours=13))),
        invalidity_date=dt.datetime(2026, 2, 28, 23, 0, tzinfo=PLUS_0530),
        revoked_by="operator:alice",
    )
    with store.transaction() as tx:
        tx.cas.add(ca())
        tx.certificates.add(record)
    with store.transaction() as tx:
        assert tx.certificates.get(record.serial) == record
        tx.certificates.revoke(record.serial, revocation)
    with store.transaction() as tx:
        back = tx.certificates.get(record.serial)
    assert back == replace(record, status=CertStatus.REVOKED, revocation=revocation)
    assert back is not None and back.revocation is not None
    for value in (back.created_at, back.not_before, back.revocation.invalidity_date):
        assert value is not None and value.utcoffset() == dt.timedelta(0)
    assert back.created_at == NOW
    assert back.revocation.revoked_at == NOW
    assert back.revocation.invalidity_date == NOW - dt.timedelta(hours=18, minutes=30)
    assert back.certificate == cert


def test_minimal_certificate_round_trip(store: SqlStore) -> None:
    record = cert_record(5, service_id=None, not_before=None, not_after=None, names=())
    with store.transaction() as tx:
        tx.cas.add(ca())
        tx.certificates.add(record)
    with store.transaction() as tx:
        assert tx.certificates.get(5) == record
        assert tx.certificates.get(6) is None


def test_crl_round_trip_and_latest(store: SqlStore) -> None:
    records = [
        CRLRecord("services", n, NOW + n * DAY, NOW + (n + 1) * DAY, bytes([n]) * 40)
        for n in (1, 2, 3)
    ]
    with store.transaction() as tx:
        tx.cas.add(ca())
        tx.cas.add(ca("other"))
        for r in records:
            tx.crls.add(replace(r, this_update=r.this_update.astimezone(PLUS_0530)))
    with store.transaction() as tx:
        assert tx.crls.latest("services") == records[-1]
        assert tx.crls.latest("other") is None


def test_revocations_mark_the_issuers_crl_stale_until_the_next_crl(store: SqlStore) -> None:
    R = x509.ReasonFlags
    with store.transaction() as tx:
        tx.cas.add(ca())
        tx.cas.add(ca("other"))
        for serial in (1, 2, 3):
            tx.certificates.add(cert_record(serial))
        tx.certificates.add(cert_record(4, issuer="other"))
        assert tx.crls.state("services") == CRLState("services", None)
        assert tx.crls.state("nope") is None
        tx.crls.add(CRLRecord("services", 1, NOW, NOW + DAY, b"1"))
    first, later = NOW + dt.timedelta(microseconds=123456), NOW + 5 * DAY
    with store.transaction() as tx:
        tx.certificates.revoke(1, Revocation(R.superseded, first.astimezone(PLUS_0530)))
        tx.certificates.revoke(2, Revocation(R.superseded, later))  # the first one counts
    with store.transaction(readonly=True) as tx:
        assert tx.crls.state("services") == CRLState("services", first, later, 1, NOW, NOW + DAY)
        assert tx.crls.state("other") == CRLState("other", None)  # another issuer's is not
    with store.transaction() as tx:
        tx.crls.add(CRLRecord("services", 2, later, later + DAY, b"2"))
        assert tx.crls.state("services") == CRLState("services", None, later, 2, later, later + DAY)
        assert tx.crls.get("services", 1) == CRLRecord("services", 1, NOW, NOW + DAY, b"1")
        assert tx.crls.get("services", 3) is None
        tx.certificates.revoke(3, Revocation(R.superseded, later + DAY))
    with store.transaction(readonly=True) as tx:
        assert tx.crls.state("services") == CRLState(
            "services", later + DAY, later + DAY, 2, later, later + DAY
        )


def test_a_crl_being_built_holds_off_revocations_not_issuance(store: SqlStore) -> None:
    """PostgreSQL: the CA row held while a CRL is signed makes a revocation of that CA wait
    (it would be missing from the CRL), but not a certificate being stored under the CA."""
    if store.engine.dialect.name != "postgresql":
        pytest.skip("SQLite runs one writer at a time")
    with store.transaction() as tx:
        tx.cas.add(ca())
        tx.certificates.add(cert_record(1))
    with store.transaction() as building:
        assert building.cas.get("services", for_update=True) is not None
        with store.transaction() as issuing:
            issuing.conn.execute(text("SET LOCAL lock_timeout = '5s'"))  # fails rather than hangs
            issuing.certificates.add(cert_record(2))
        with pytest.raises(StoreUnavailable), store.transaction() as revoking:
            revoking.conn.execute(text("SET LOCAL lock_timeout = '100ms'"))
            revoking.certificates.revoke(1, Revocation(x509.ReasonFlags.superseded, NOW))
    with store.transaction(readonly=True) as tx:
        assert tx.certificates.get(2) is not None
        assert tx.crls.state("services") == CRLState("services", None)


def test_audit_round_trip_keeps_hashes_valid(store: SqlStore) -> None:
    written = append_audit(store, 3)
    with store.transaction() as tx:
        back = list(tx.audit.iterate())
        recent = tx.audit.recent(2)
        by_subject = tx.audit.recent(5, subject="s1")
        by_action = tx.audit.recent(5, action="nope")
    assert back == written
    assert all(entry_hash(e) == e.hash for e in back)
    assert back[0].details == {"i": 0, "text": "ünïcode ✓", "nested": {"list": [1, 2]}}
    assert back[0].at == NOW + dt.timedelta(microseconds=123456)
    assert [e.seq for e in recent] == [3, 2]
    assert [e.seq for e in by_subject] == [2]
    assert by_action == []


@pytest.fixture
def inventory(store: SqlStore) -> dict[str, int]:
    """Certificates in every state across two issuers; NOW is the query time."""
    serials = {
        "active": 0x101,
        "soon": 0x102,
        "expired": 0x103,
        "revoked": 0x104,
        "pending": 0x105,
        "failed": 0x106,
        "other-issuer": 0x107,
    }
    records = [
        cert_record(serials["active"], not_after=NOW + 60 * DAY, created_at=NOW - 7 * DAY),
        cert_record(
            serials["soon"],
            not_after=NOW + 5 * DAY,
            service_id="api",
            created_at=NOW - 6 * DAY,
        ),
        cert_record(serials["expired"], not_after=NOW - DAY, created_at=NOW - 5 * DAY),
        cert_record(serials["revoked"], not_after=NOW + 60 * DAY, created_at=NOW - 4 * DAY),
        cert_record(
            serials["pending"],
            status=CertStatus.PENDING,
            not_before=None,
            not_after=None,
            created_at=NOW - 3 * DAY,
        ),
        cert_record(
            serials["failed"],
            status=CertStatus.FAILED,
            not_before=None,
            not_after=None,
            created_at=NOW - 2 * DAY,
        ),
        cert_record(
            serials["other-issuer"],
            issuer="edge",
            not_after=NOW + 60 * DAY,
            created_at=NOW - DAY,
        ),
    ]
    with store.transaction() as tx:
        tx.cas.add(ca())
        tx.cas.add(ca("edge"))
        for r in records:
            tx.certificates.add(r)
        tx.certificates.revoke(
            serials["revoked"], Revocation(x509.ReasonFlags.superseded, NOW, None, "t")
        )
    return serials


FILTERS = [
    ({}, ["other-issuer", "failed", "pending", "revoked", "expired", "soon", "active"]),
    ({"issuer": "services"}, ["failed", "pending", "revoked", "expired", "soon", "active"]),
    ({"issuer": "edge"}, ["other-issuer"]),
    ({"status": CertStatus.ACTIVE}, ["other-issuer", "soon", "active"]),
    ({"status": CertStatus.EXPIRED}, ["expired"]),
    ({"status": CertStatus.REVOKED}, ["revoked"]),
    ({"status": CertStatus.PENDING}, ["pending"]),
    ({"status": CertStatus.FAILED}, ["failed"]),
    ({"service_id": "api"}, ["soon"]),
    ({"expiring_before": NOW + 10 * DAY}, ["soon"]),
    ({"expiring_before": (NOW + 10 * DAY).astimezone(PLUS_0530)}, ["soon"]),
    # by expiry, soonest first; the two due on the same day by serial
    ({"expiring_before": NOW + 90 * DAY}, ["soon", "active", "other-issuer"]),
    ({"issuer": "services", "status": CertStatus.ACTIVE}, ["soon", "active"]),
    ({"service_id": "api", "status": CertStatus.REVOKED}, []),
    ({"limit": 2}, ["other-issuer", "failed"]),
]


@pytest.mark.parametrize(
    ("filters", "expected"),
    FILTERS,
    ids=[
        "all",
        "issuer-services",
        "issuer-edge",
        "active",
        "expired",
        "revoked",
        "pending",
        "failed",
        "service",
        "expiring-10d",
        "expiring-10d-offset-tz",
        "expiring-90d",
        "issuer-and-active",
        "service-and-revoked",
        "limit",
    ],
)
def test_search_and_count(
    store: SqlStore, inventory: dict[str, int], filters: dict[str, object], expected: list[str]
) -> None:
    query = CertificateQuery(now=NOW, **filters)  # type: ignore[arg-type]
    with store.transaction() as tx:
        found = tx.certificates.search(query)
        count = tx.certificates.count(replace(query, limit=100))
    names = {v: k for k, v in inventory.items()}
    assert [names[r.serial] for r in found] == expected
    if "limit" not in filters:
        assert count == len(expected)
    else:
        assert count == len(inventory)
    revoked = [r for r in found if r.status is CertStatus.REVOKED]
    assert all(r.revocation is not None for r in revoked)


def test_revoked_lists_only_that_issuer(store: SqlStore, inventory: dict[str, int]) -> None:
    with store.transaction() as tx:
        assert [r.serial for r in tx.certificates.revoked("services")] == [inventory["revoked"]]
        assert tx.certificates.revoked("edge") == []


def test_revoked_starts_from_the_revocations_not_the_certificates(store: SqlStore) -> None:
    # each CRL reads the revoked certificates: by serial from `revocations`, never by reading
    # every certificate (SQLite's plan; PostgreSQL plans from its statistics)
    if store.engine.dialect.name != "sqlite":
        pytest.skip("the plan is SQLite's")
    from pkiforge.store.repos import _CERTS, _REVOKED_SELECT

    stmt = _REVOKED_SELECT.where(_CERTS.c.issuer == "services")
    sql = str(stmt.compile(store.engine, compile_kwargs={"literal_binds": True}))
    with store.engine.connect() as conn:
        plan = " ".join(str(row[-1]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}"))
    assert "SCAN certificates" not in plan and "SEARCH certificates" in plan, plan


def count_rows(store: SqlStore) -> dict[str, int]:
    with store.engine.connect() as conn:
        return {
            t.__tablename__: conn.execute(select(func.count()).select_from(t)).scalar_one()
            for t in (CARow, CertificateRow, RevocationRow, CRLRow, AuditRow)
        }


def test_duplicate_serial_is_a_conflict(store: SqlStore) -> None:
    with store.transaction() as tx:
        tx.cas.add(ca())
        tx.certificates.add(cert_record(42))
    before = count_rows(store)
    with pytest.raises(Conflict) as info, store.transaction() as tx:
        tx.certificates.add(cert_record(42, common_name="other.example.internal"))
    assert info.value.data["field"] == "serial"
    assert "serial 2a already exists" in str(info.value)
    assert count_rows(store) == before
    with store.transaction() as tx:
        stored = tx.certificates.get(42)
    assert stored is not None and stored.common_name == "web.example.internal"


def test_duplicate_ca_and_double_revocation_are_conflicts(store: SqlStore) -> None:
    with store.transaction() as tx:
        tx.cas.add(ca())
        tx.certificates.add(cert_record(7))
        tx.certificates.revoke(7, Revocation(x509.ReasonFlags.superseded, NOW))
    with pytest.raises(Conflict, match="CA 'services' already exists"), store.transaction() as tx:
        tx.cas.add(ca())
    with pytest.raises(Conflict, match="already revoked"), store.transaction() as tx:
        tx.certificates.revoke(7, Revocation(x509.ReasonFlags.key_compromise, NOW))
    with pytest.raises(Conflict, match="is not stored"), store.transaction() as tx:
        tx.certificates.update(cert_record(8))
    with store.transaction() as tx:
        record = tx.certificates.get(7)
    assert record is not None and record.revocation is not None
    assert record.revocation.reason is x509.ReasonFlags.superseded


def test_a_transaction_that_raises_writes_nothing(store: SqlStore) -> None:
    before = count_rows(store)
    with pytest.raises(RuntimeError, match="boom"), store.transaction() as tx:
        tx.cas.add(ca())
        tx.certificates.add(cert_record(1))
        tx.certificates.revoke(1, Revocation(x509.ReasonFlags.superseded, NOW))
        tx.crls.add(CRLRecord("services", 1, NOW, NOW + DAY, b"x"))
        append_to = tx.audit
        from pkiforge.actor import Actor
        from pkiforge.ca.audit import next_entry

        append_to.add(next_entry(None, at=NOW, actor=Actor("t", "t"), action="a", subject=None))
        raise RuntimeError("boom")
    assert count_rows(store) == before == {k: 0 for k in before}
