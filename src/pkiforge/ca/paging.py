"""Keyset pagination of the inventory: the order a query lists in, the position after a page,
and the opaque cursor that carries that position to the next request.

A page continues strictly after the last row of the previous one in a total order (a time,
then the serial), so a page costs the same however deep it is, and rows inserted or removed
meanwhile neither repeat nor hide a row that stays. The cursor is not secret and not signed:
it only says where to start, and every filter (the caller's own service included) still
applies to the rows after it; a cursor that is not one we made is refused as invalid input.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from pkiforge.ca.models import CertStatus, Order, PagePosition, format_serial
from pkiforge.errors import InvalidInput

if TYPE_CHECKING:
    from pkiforge.ca.models import CertificateQuery, CertificateRecord, Total
    from pkiforge.ca.ports import CertificateRepository

MAX_CURSOR = 256  # characters; a cursor we make is about 100
_HEX = "0123456789abcdef"
EXACT_TOTAL_UP_TO = 1000  # counted exactly up to this many; an estimate above it


def order_of(query: CertificateQuery) -> Order:
    """The order `query` lists in: by expiry when it asks about expiry, else newest first."""
    if query.expiring_before is not None:
        return Order.EXPIRING
    if query.status is CertStatus.EXPIRED:
        return Order.EXPIRED
    return Order.NEWEST


@dataclass(frozen=True)
class CertificatePage:
    """One page of the inventory and where the next one starts (None: this is the last)."""

    items: list[CertificateRecord]
    next: PagePosition | None
    total: Total


def read_page(certificates: CertificateRepository, query: CertificateQuery) -> CertificatePage:
    """One page of `query`: a row more is read to learn whether another page follows."""
    found = certificates.search(replace(query, limit=query.limit + 1))
    items = found[: query.limit]
    more = len(found) > query.limit
    following = PagePosition.after(items[-1], order_of(query)) if more else None
    return CertificatePage(items, following, certificates.total(query))


def encode_cursor(position: PagePosition) -> str:
    """The position as URL-safe text without padding."""
    data = {
        "o": position.order.value,
        "t": position.at.astimezone(dt.UTC).isoformat(),
        "s": format_serial(position.serial),
    }
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str, expected: Order) -> PagePosition:
    """The position a cursor carries, for a query listing in `expected` order.

    Raises:
        InvalidInput: (field `cursor`) not a cursor we made, or one made for another order.
    """
    if len(text) > MAX_CURSOR:
        raise InvalidInput(f"cursor is longer than {MAX_CURSOR} characters", field="cursor")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        data = json.loads(raw)
        if not isinstance(data, dict) or set(data) != {"o", "t", "s"}:
            raise ValueError("unexpected fields")
        order, when, serial = data["o"], data["t"], data["s"]
        if not (isinstance(order, str) and isinstance(when, str) and isinstance(serial, str)):
            raise ValueError("unexpected types")
        position = PagePosition(Order(order), _utc(when), _serial(serial))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput(
            "cursor is not one this server made; start again without it", field="cursor"
        ) from None
    if position.order is not expected:
        raise InvalidInput(
            "cursor belongs to a listing with other filters; start again without it",
            field="cursor",
        )
    return position


def _utc(text: str) -> dt.datetime:
    when = dt.datetime.fromisoformat(text)
    if when.tzinfo is None:
        raise ValueError("no time zone")
    return when.astimezone(dt.UTC)


def _serial(text: str) -> int:
    # exactly as format_serial writes it: lower-case hex, no leading zero, at most 20 octets
    if not 0 < len(text) <= 40 or text.startswith("0") or set(text) - set(_HEX):
        raise ValueError("not a stored serial")
    return int(text, 16)
