"""Keyset pages of the inventory (ca/paging.py, store/inventory.py) over a skewed fleet made
by bench/fleet.py: every row exactly once in a stable order for every filter, also while rows
are inserted between pages; totals; the plans use an index."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import Connection, insert, text

from pkiforge.ca.models import CertificateQuery, CertStatus, Order
from pkiforge.ca.paging import order_of, read_page
from pkiforge.store.db import SqlStore
from pkiforge.store.repos import SqlCertificateRepository
from pkiforge.store.tables import CertificateRow

from .helpers import DAY, FLEET_ISSUERS, NOW, ca, fleet

FLEET = 3000

# filters as the API and CLI take them; the expected rows come from the generated rows in
# Python (`_matches`), not from SQL
FILTERS: list[dict[str, Any]] = [
    {},
    {"issuer": "services"},
    {"issuer": "legacy"},
    {"service_id": "large-0"},
    {"service_id": "svc-00003"},
    {"status": CertStatus.ACTIVE},
    {"status": CertStatus.EXPIRED},
    {"status": CertStatus.REVOKED},
    {"status": CertStatus.PENDING},
    {"status": CertStatus.FAILED},
    {"expiring_before": NOW + 30 * DAY},
    {"service_id": "large-1", "status": CertStatus.ACTIVE},
    {"issuer": "edge", "expiring_before": NOW + 30 * DAY},
    {"service_id": "large-2", "expiring_before": NOW + 30 * DAY},
    {"issuer": "services", "status": CertStatus.REVOKED},
    {"issuer": "edge", "status": CertStatus.EXPIRED},
    {"service_id": "large-0", "issuer": "services", "status": CertStatus.ACTIVE},
]


def _matches(row: dict[str, Any], f: dict[str, Any]) -> bool:
    if "issuer" in f and row["issuer"] != f["issuer"]:
        return False
    if "service_id" in f and row["service_id"] != f["service_id"]:
        return False
    status, after = f.get("status"), row["not_after"]
    active = row["status"] == "active"
    if status is not CertStatus.ACTIVE and "expiring_before" not in f and row["archived_at"]:
        return False
    if status is CertStatus.ACTIVE and not (active and after > NOW):
        return False
    if status is CertStatus.EXPIRED and not (active and after <= NOW):
        return False
    if status not in (None, CertStatus.ACTIVE, CertStatus.EXPIRED) and row["status"] != status:
        return False
    if "expiring_before" in f:
        return active and NOW < after <= f["expiring_before"]
    return True


def _expected(rows: list[dict[str, Any]], f: dict[str, Any]) -> list[str]:
    order = order_of(CertificateQuery(**f))
    key = "created_at" if order is Order.NEWEST else "not_after"
    found = sorted(
        (r for r in rows if _matches(r, f)),
        key=lambda r: (r[key], r["serial_number"]),
        reverse=order is not Order.EXPIRING,
    )
    return [r["serial_number"] for r in found]


def _all_pages(store: SqlStore, query: CertificateQuery) -> list[str]:
    seen: list[str] = []
    while True:
        with store.transaction(readonly=True) as tx:
            page = read_page(tx.certificates, query)
        seen += [format(r.serial, "x") for r in page.items]
        if page.next is None:
            return seen
        query = replace(query, after=page.next)


def test_pages_hold_every_row_once_in_order_for_every_filter(store: SqlStore) -> None:
    rows = fleet(store, FLEET)
    for f in FILTERS:
        expected = _expected(rows, f)
        got = _all_pages(store, CertificateQuery(now=NOW, limit=97, **f))
        assert got == expected, f
    # the shape is a fleet's: most active, a few large services, several issuers
    active = _expected(rows, {"status": CertStatus.ACTIVE})
    assert 0.7 < len(active) / FLEET < 0.9
    small = [r["service_id"] for r in rows if (r["service_id"] or "").startswith("svc-")]
    large = [r for r in rows if r["service_id"] == "large-0"]
    assert len(large) > 2 * len(small) / len(set(small))
    assert len({r["issuer"] for r in rows}) == len(FLEET_ISSUERS)


def _tied(serial: int, at: dt.datetime) -> dict[str, Any]:
    return {
        "serial_number": format(serial, "x"),
        "issuer": "services",
        "profile": "service",
        "common_name": "tie.example.internal",
        "names": [],
        "service_id": "tie",
        "status": "active",
        "created_at": at,
        "not_before": at,
        "not_after": at + 30 * DAY,
        "fingerprint_sha256": format(serial, "064x"),
        "pem": None,
        "server_generated_key": False,
    }


def test_ties_are_ordered_by_serial_and_each_shown_once(store: SqlStore) -> None:
    with store.transaction() as tx:
        tx.cas.add(ca("services"))
    serials = [0x5000 + i * 37 for i in range(60)]
    at = NOW - DAY
    with store.engine.begin() as conn:
        conn.execute(insert(CertificateRow.__table__), [_tied(s, at) for s in serials])
    newest = _all_pages(store, CertificateQuery(service_id="tie", now=NOW, limit=7))
    expiring = _all_pages(store, CertificateQuery(expiring_before=NOW + 60 * DAY, now=NOW, limit=7))
    by_serial = sorted(format(s, "x") for s in serials)
    assert newest == by_serial[::-1]
    assert expiring == by_serial


def _insert(conn: Connection, rows: list[dict[str, Any]]) -> None:
    conn.execute(insert(CertificateRow.__table__), rows)


def test_rows_inserted_between_pages_neither_repeat_nor_hide_a_row(store: SqlStore) -> None:
    """A writer inserts before, after and level with the cursor between pages (ties too)."""
    rows = fleet(store, 1200)
    serial = 0x7000_0000
    for f in ({}, {"expiring_before": NOW + 30 * DAY}, {"service_id": "large-0"}):
        before = _expected(rows, f)
        query = CertificateQuery(now=NOW, limit=50, **f)
        seen: list[str] = []
        while True:
            with store.transaction(readonly=True) as tx:
                page = read_page(tx.certificates, query)
            seen += [format(r.serial, "x") for r in page.items]
            if page.next is None:
                break
            query = replace(query, after=page.next)
            level = page.next.at if page.next.order is Order.NEWEST else page.next.at - 30 * DAY
            new = []
            for at in (NOW - 900 * DAY, NOW + DAY, level, level, level - dt.timedelta(1)):
                serial += 1
                row = _tied(serial, at)
                row["service_id"] = f.get("service_id", "large-0")
                new.append(row)
            with store.engine.begin() as conn:
                _insert(conn, new)
        assert len(seen) == len(set(seen)), f
        assert set(before) <= set(seen), f
        assert [s for s in seen if s in set(before)] == before, f


def test_total_is_exact_up_to_a_bound_then_an_estimate(store: SqlStore) -> None:
    rows = fleet(store, FLEET)
    small = {"service_id": "svc-00003"}
    with store.transaction(readonly=True) as tx:
        everything = tx.certificates.total(CertificateQuery(now=NOW))
        few = tx.certificates.total(CertificateQuery(now=NOW, **small))
    true_total = len(_expected(rows, {}))
    assert few.exact and few.count == len(_expected(rows, small))
    if store.engine.dialect.name == "sqlite":  # counted exactly up to 100,000
        assert everything.exact and everything.count == true_total
    else:  # above 1,000: the planner's estimate, and marked so
        assert not everything.exact and not everything.at_least
        assert true_total / 2 < everything.count < true_total * 2


def _plan(conn: Connection, query: CertificateQuery) -> list[str]:
    """The plan's steps that read `certificates` (the revocations join aside)."""
    stmt = SqlCertificateRepository.statement(query)
    sql = str(stmt.compile(conn, compile_kwargs={"literal_binds": True}))
    if conn.dialect.name == "sqlite":
        steps = [str(row[-1]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}")]
        return [s for s in steps if re.match(r"(SCAN|SEARCH) certificates\b", s) or "B-TREE" in s]
    # a few thousand rows: that the ordered index serves the query, as it does at scale
    for setting in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
        conn.execute(text(f"SET LOCAL {setting} = off"))
    steps = [str(row[0]) for row in conn.exec_driver_sql(f"EXPLAIN {sql}")]
    return [s for s in steps if " on certificates" in s or re.search(r"Sort  \(", s)]


@pytest.mark.parametrize("deep", [False, True], ids=["first-page", "deep-page"])
def test_every_filter_pages_through_an_index(store: SqlStore, deep: bool) -> None:
    fleet(store, 2000)
    for f in FILTERS:
        query = CertificateQuery(now=NOW, limit=101, **f)
        if deep:
            with store.transaction(readonly=True) as tx:
                page = read_page(tx.certificates, replace(query, limit=20))
            if page.next is None:
                continue
            query = replace(query, after=page.next)
        with store.engine.begin() as conn:
            plan = _plan(conn, query)
        reads = [step for step in plan if "certificates" in step]
        assert reads and all("ix_certificates" in step for step in reads), (f, plan)
        # no step sorts every matching row: SQLite may order ties within one time
        assert not any("TEMP B-TREE FOR ORDER BY" in step for step in plan), (f, plan)
        assert not any(re.search(r"(?<!Incremental )Sort\b", step) for step in plan), (f, plan)
