"""Injected time: the core never calls `datetime.now()` itself."""

from __future__ import annotations

import datetime as dt
from typing import Protocol

from pkiforge.errors import InvalidInput


class Clock(Protocol):
    """Source of the current time, always timezone-aware UTC."""

    def now(self) -> dt.datetime: ...


class SystemClock:
    """The real clock."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)


class FixedClock:
    """A clock that only moves when told to; for tests."""

    def __init__(self, at: dt.datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("FixedClock needs a timezone-aware datetime")
        self._at = at

    def now(self) -> dt.datetime:
        return self._at

    def advance(self, by: dt.timedelta) -> None:
        self._at += by


def utc(value: dt.datetime) -> dt.datetime:
    """Return `value` as aware UTC (naive values, as SQLite returns them, are taken as UTC)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def utc_input(value: dt.datetime, field: str) -> dt.datetime:
    """`utc(value)` for a time someone sent, which may name an instant datetime cannot hold.

    An offset can carry a time at either end of the years 1-9999 past that end in UTC
    (`0001-01-01T03:34:38+19:25`, `9999-12-31T23:59:59-01:00`); naive times are taken as UTC.

    Raises:
        InvalidInput: naming `field`, when the time in UTC falls outside years 1-9999.
    """
    try:
        return utc(value)
    except OverflowError:
        raise InvalidInput(
            f"{field} {value.isoformat()} falls outside the years 1-9999 once converted to UTC",
            field=field,
        ) from None
