"""RFC 8941 parsing and serialisation, checked against the independent `http_sf` package."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import http_sf
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pkiforge.auth.structured import (
    InnerList,
    Item,
    Member,
    Token,
    parse_dictionary,
    parse_item,
    parse_list,
    serialize_dictionary,
    serialize_item,
    serialize_list,
)
from pkiforge.errors import InvalidInput

VALID_DICTIONARIES = [
    'sig1=("@method" "@target-uri");created=1618884473;keyid="k1";nonce="a b\\"c"',
    "sha-256=:RK/0qy18MlBSVnWgjwz6lZEWjP/lF5HF9bvEF8FabDg=:, sha-512=:AQID:",
    "a, b;x=?0, c=?1;y=tok/en:x",
    "a=1.5, b=-0.25;q=0.001, c=-999999999999999",
    "a=(), b=(1 2);p, c=*tok",
    "  a=1 ,\tb=2  ",
    'a=("x";p=1 "y");c=2',
]
VALID_LISTS = ["a, (b c);d, :AQID:", '"x", ?1, 42']
MALFORMED = [
    ("sig1=(@method)", "where an item was expected"),
    ('a="unterminated', "unterminated string"),
    ("a=:not base64!:", "not base64"),
    ("a=1,", "trailing comma"),
    ("A=1", "key must start"),
    ("a=1 b=2", "expected ','"),
    ("a=1234567890123456", "longer than 15 digits"),
    ("a=1.2345", "decimal"),
    ('a="\\x"', "escapes"),
    ("a=?2", "boolean"),
    ('a=("x""y")', "inner list"),
    ("a=(1 2", "inner list"),
    ('a="caf\u00e9"', "non-ASCII"),
    ("a=@x", "where an item was expected"),
]


def _theirs(member: Member | Any) -> Any:
    """Our parse result in http_sf's shape, for comparison."""
    if isinstance(member, InnerList):
        return ([_theirs(i) for i in member.items], _params(member.params))
    return (_bare(member.value), _params(member.params))


def _bare(value: Any) -> Any:
    return str(value) if isinstance(value, Token) else value


def _params(params: dict[str, Any]) -> dict[str, Any]:
    return {k: _bare(v) for k, v in params.items()}


def _normalised(parsed: Any) -> Any:
    """http_sf's result with its Token type turned into plain strings."""
    if isinstance(parsed, dict):
        return {k: _normalised(v) for k, v in parsed.items()}
    if isinstance(parsed, list | tuple):
        return type(parsed)(_normalised(v) for v in parsed)
    if type(parsed).__name__ == "Token":
        return str(parsed)
    return parsed


@pytest.mark.parametrize("text", VALID_DICTIONARIES)
def test_dictionary_parses_like_http_sf_and_round_trips(text: str) -> None:
    ours = parse_dictionary(text)
    theirs = http_sf.parse(text.encode(), tltype="dictionary")
    assert {k: _theirs(v) for k, v in ours.items()} == _normalised(theirs)
    assert serialize_dictionary(ours) == http_sf.ser(theirs)


@pytest.mark.parametrize("text", VALID_LISTS)
def test_list_parses_like_http_sf_and_round_trips(text: str) -> None:
    ours = parse_list(text)
    theirs = http_sf.parse(text.encode(), tltype="list")
    assert [_theirs(m) for m in ours] == _normalised(theirs)
    assert serialize_list(ours) == http_sf.ser(theirs)


@pytest.mark.parametrize(("text", "reason"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_values_are_refused_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(InvalidInput, match=reason):
        parse_dictionary(text)
    with pytest.raises(Exception):  # noqa: B017 - http_sf agrees it is malformed
        http_sf.parse(text.encode(), tltype="dictionary")


def test_token_and_string_stay_apart() -> None:
    assert parse_item("abc").value == Token("abc")
    assert isinstance(parse_item("abc").value, Token)
    assert not isinstance(parse_item('"abc"').value, Token)
    assert serialize_item(Item(Token("abc"))) == "abc"
    assert serialize_item(Item("abc")) == '"abc"'


def test_missing_base64_padding_is_accepted() -> None:
    assert parse_item(":AQI:").value == b"\x01\x02"


@pytest.mark.parametrize(
    "value",
    [10**15, "tab\there", Token("1abc"), Decimal("1000000000000")],
    ids=["int-range", "control-char", "bad-token", "decimal-range"],
)
def test_unrepresentable_values_are_refused(value: Any) -> None:
    with pytest.raises(InvalidInput):
        serialize_item(Item(value))


_keys = st.from_regex(r"[a-z*][a-z0-9_.*-]{0,6}", fullmatch=True)
_bare_items = st.one_of(
    st.integers(-(10**15) + 1, 10**15 - 1),
    st.booleans(),
    st.binary(max_size=24),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=16),
    st.from_regex(r"[A-Za-z*][A-Za-z0-9!#$%&'*+.^_`|~:/-]{0,8}", fullmatch=True).map(Token),
)
_params_st = st.dictionaries(_keys, _bare_items, max_size=3)
_items = st.builds(Item, _bare_items, _params_st)
_members = st.one_of(_items, st.builds(InnerList, st.lists(_items, max_size=3), _params_st))


@given(st.dictionaries(_keys, _members, min_size=1, max_size=4))
def test_any_dictionary_round_trips_and_http_sf_agrees(dictionary: dict[str, Member]) -> None:
    text = serialize_dictionary(dictionary)
    assert serialize_dictionary(parse_dictionary(text)) == text
    assert http_sf.ser(http_sf.parse(text.encode(), tltype="dictionary")) == text
