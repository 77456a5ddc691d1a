"""The inventory's SQL: the keyset order of a listing and its total, exact or estimated.

Each order is an index's own (migration 0016), so a page reads about `limit` index entries
however deep it is. A total is never a count over the whole table per page: it is counted up
to a bound and, above it, PostgreSQL's planner estimate (SQLite has none: the bound, marked
as not exact).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import ColumnElement, Connection, Table, and_, func, literal, or_, select

from pkiforge.ca.models import Order, PagePosition, Total, format_serial
from pkiforge.clock import utc
from pkiforge.store.tables import CertificateRow

_CERTS = cast(Table, CertificateRow.__table__)

# counted exactly up to this many rows: on PostgreSQL an estimate is at hand above it; on
# SQLite, a single-machine store without one, counting further costs more than it tells
EXACT_UP_TO = {"postgresql": 1_000, "sqlite": 100_000}


def order_by(order: Order) -> Sequence[Any]:
    """ORDER BY terms of `order`: its time, then the serial, so that ties are ordered."""
    c = _CERTS.c
    if order is Order.NEWEST:
        return (c.created_at.desc(), c.serial_number.desc())
    if order is Order.EXPIRING:
        return (c.not_after.asc(), c.serial_number.asc())
    return (c.not_after.desc(), c.serial_number.desc())


def unindexed(column: ColumnElement[Any]) -> ColumnElement[Any]:
    """`column`, written so that no index is used for a test on it: `COALESCE(x, x)`.

    A listing is cheap when its order's index serves it; an index on a filtered column
    instead finds every matching row and sorts them all. SQLite has no statistics to tell
    (it takes an equality on `issuer` or a range on `not_after` as selective), so a term that
    would draw it there is hidden: the issuer in a listing by expiry (the expiry index, then
    the issuer tested per row), the expiry in a listing of active ones newest first.
    """
    return func.coalesce(column, column)


def after(position: PagePosition) -> ColumnElement[bool]:
    """The rows strictly after `position` in its order.

    Written `t <= x AND (t < x OR serial < s)` rather than as a row value comparison: the
    first term is an index range on both engines, the second only settles the ties.
    """
    c = _CERTS.c
    at, serial = utc(position.at), format_serial(position.serial)
    if position.order is Order.EXPIRING:
        column = c.not_after
        return and_(column >= at, or_(column > at, c.serial_number > serial))
    column = c.created_at if position.order is Order.NEWEST else c.not_after
    return and_(column <= at, or_(column < at, c.serial_number < serial))


def total(
    conn: Connection,
    where: Sequence[ColumnElement[bool]],
    plain: Sequence[ColumnElement[bool]],
    order: Order,
) -> Total:
    """How many certificates match `where`: exact up to a bound, else an estimate (of the
    same rows, as `plain` states them to the planner)."""
    bound = EXACT_UP_TO.get(conn.dialect.name, EXACT_UP_TO["sqlite"])
    # counted in the listing's own order: its index, not a scan of the table that happens
    # to meet the first matches early
    rows = (
        select(literal(1))
        .select_from(_CERTS)
        .where(*where)
        .order_by(*order_by(order))
        .limit(bound + 1)
        .subquery()
    )
    counted = int(conn.execute(select(func.count()).select_from(rows)).scalar_one())
    if counted <= bound:
        return Total(counted, exact=True)
    if conn.dialect.name != "postgresql":
        return Total(bound, exact=False, at_least=True)
    return Total(max(_planner_rows(conn, plain), bound + 1), exact=False)


def _planner_rows(conn: Connection, where: Sequence[ColumnElement[bool]]) -> int:
    """PostgreSQL's estimate of the rows `where` selects (from ANALYZE statistics)."""
    compiled = select(literal(1)).select_from(_CERTS).where(*where).compile(conn)
    plan = conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {compiled}", compiled.params).scalar_one()
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])
