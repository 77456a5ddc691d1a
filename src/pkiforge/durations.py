"""Human durations such as `365d`, `12h`, `30m`, `90s` (also combined: `1d12h`)."""

from __future__ import annotations

import datetime as dt
import re

_PART = re.compile(r"(\d+)([wdhms])")
_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(text: str) -> dt.timedelta:
    """Parse `30d`, `12h`, `1d12h`, `90s` into a timedelta.

    Raises:
        ValueError: the text is empty, has an unknown unit, is zero or is too long for a
            timedelta.
    """
    value = text.strip().lower()
    if not value or _PART.sub("", value) != "":
        raise ValueError(
            f"invalid duration {text!r}: use a number and a unit (w, d, h, m, s), e.g. 30d"
        )
    seconds = sum(int(n) * _UNITS[u] for n, u in _PART.findall(value))
    if seconds <= 0:
        raise ValueError(f"invalid duration {text!r}: must be greater than zero")
    try:
        return dt.timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError(
            f"invalid duration {text!r}: at most {dt.timedelta.max.days} days"
        ) from None


def format_duration(delta: dt.timedelta) -> str:
    """Render a timedelta in the largest whole units, e.g. `365d`, `90m`."""
    seconds = int(delta.total_seconds())
    for unit in ("d", "h", "m"):
        size = _UNITS[unit]
        if seconds % size == 0 and seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
