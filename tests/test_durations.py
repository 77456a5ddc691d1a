"""Human durations: `30d`, `12h`, `1d12h` ..."""

from __future__ import annotations

import datetime as dt

import pytest

from pkiforge.durations import format_duration, parse_duration

S = dt.timedelta(seconds=1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", 90 * S),
        ("30m", 30 * 60 * S),
        ("12h", 12 * 3600 * S),
        ("365d", dt.timedelta(days=365)),
        ("2w", dt.timedelta(days=14)),
        ("1d12h", dt.timedelta(days=1, hours=12)),
        ("1w2d3h4m5s", dt.timedelta(weeks=1, days=2, hours=3, minutes=4, seconds=5)),
        ("  30D ", dt.timedelta(days=30)),
        ("0d1s", S),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_parse(text: str, expected: dt.timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "use a number and a unit"),
        ("   ", "use a number and a unit"),
        ("30", "use a number and a unit"),
        ("d", "use a number and a unit"),
        ("30y", "use a number and a unit"),
        ("1.5d", "use a number and a unit"),
        ("-5d", "use a number and a unit"),
        ("1d 12h", "use a number and a unit"),
        ("thirty days", "use a number and a unit"),
        ("0d", "must be greater than zero"),
        ("0s0m", "must be greater than zero"),
        ("1000000000d", "at most 999999999 days"),
        ("9" * 40 + "s", "at most 999999999 days"),
    ],
    ids=["empty", "blank", "no-unit", "no-number", "years", "fraction", "negative", "space",
         "words", "zero", "zero-combined", "past-timedelta", "huge"],
)  # fmt: skip
def test_parse_refuses(text: str, reason: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_duration(text)
    assert reason in str(info.value)
    assert repr(text) in str(info.value)


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (dt.timedelta(days=365), "365d"),
        (dt.timedelta(hours=36), "36h"),
        (dt.timedelta(minutes=90), "90m"),
        (dt.timedelta(seconds=61), "61s"),
        (dt.timedelta(0), "0s"),
    ],
    ids=["days", "hours", "minutes", "seconds", "zero"],
)
def test_format(delta: dt.timedelta, text: str) -> None:
    assert format_duration(delta) == text


@pytest.mark.parametrize("text", ["365d", "36h", "90m", "61s", "1d12h", "2w"])
def test_round_trip(text: str) -> None:
    assert parse_duration(format_duration(parse_duration(text))) == parse_duration(text)
