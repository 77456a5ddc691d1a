"""The registry's name index: every registered pattern that covers a requested name is filed
under one of the keys that name looks up (so the ownership check never misses an owner)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pkiforge.ca.authorization import name_matches
from pkiforge.ca.name_index import candidate_keys, keys_for, pattern_key
from pkiforge.x509.names import SubjectName


@pytest.mark.parametrize(
    ("pattern", "key"),
    [
        ("DNS:api.internal", "DNS:api.internal"),
        ("dns:API.Internal.", "DNS:api.internal"),
        ("DNS:*.api.internal", "DNS:*.api.internal"),
        ("api.internal", "DNS:api.internal"),  # untyped, as only a hand-written row would be
        ("IP:10.0.0.7", "IP:10.0.0.7"),
        ("IP:2001:DB8:0:0::1", "IP:2001:db8::1"),
        ("10.0.0.7", "IP:10.0.0.7"),
        ("URI:spiffe://T/svc/A", "URI:spiffe://t/svc/a"),
    ],
)
def test_pattern_key(pattern: str, key: str) -> None:
    assert pattern_key(pattern) == key


@pytest.mark.parametrize(
    ("name", "keys"),
    [
        (SubjectName("DNS", "x.api.internal"), ["DNS:x.api.internal", "DNS:*.api.internal"]),
        (SubjectName("DNS", "*.api.internal"), ["DNS:*.api.internal"]),
        (SubjectName("DNS", "localhost"), ["DNS:localhost"]),
        (SubjectName("IP", "2001:db8::1"), ["IP:2001:db8::1"]),
        (SubjectName("URI", "spiffe://t/svc/a"), ["URI:spiffe://t/svc/a"]),
    ],
)
def test_candidate_keys(name: SubjectName, keys: list[str]) -> None:
    assert candidate_keys(name) == keys


def test_keys_for_lists_each_key_once() -> None:
    names = [SubjectName("DNS", "a.x.internal"), SubjectName("DNS", "b.x.internal")]
    assert keys_for(names) == ["DNS:a.x.internal", "DNS:*.x.internal", "DNS:b.x.internal"]


# a small alphabet, so that generated patterns and names often match
LABEL = st.sampled_from(["a", "b", "api", "Api"])
DNS = st.lists(LABEL, min_size=1, max_size=4).map(".".join)
IP = st.sampled_from(["10.0.0.1", "10.0.0.2", "2001:db8::1", "2001:DB8:0::1"])
URI = st.sampled_from(["spiffe://t/a", "spiffe://T/a", "https://a/b"])


@st.composite
def patterns(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["DNS", "wild", "IP", "URI", "bare"]))
    if kind == "DNS":
        return f"DNS:{draw(DNS)}{draw(st.sampled_from(['', '.']))}"
    if kind == "wild":
        return f"DNS:*.{draw(DNS)}"
    if kind == "IP":
        return f"IP:{draw(IP)}"
    if kind == "URI":
        return f"URI:{draw(URI)}"
    return draw(DNS)


@st.composite
def names(draw: st.DrawFn) -> SubjectName:
    kind = draw(st.sampled_from(["DNS", "wild", "IP", "URI"]))
    if kind == "DNS":
        return SubjectName("DNS", draw(DNS).lower())
    if kind == "wild":
        return SubjectName("DNS", f"*.{draw(DNS).lower()}")
    if kind == "IP":
        return SubjectName("IP", draw(IP))
    return SubjectName("URI", draw(URI))


@given(patterns(), names())
def test_a_pattern_that_covers_a_name_is_filed_under_one_of_its_keys(
    pattern: str, name: SubjectName
) -> None:
    if name_matches(pattern, name):
        assert pattern_key(pattern) in candidate_keys(name), (pattern, name)


def test_the_property_is_not_vacuous() -> None:
    # the strategies above do produce covering pairs of every kind
    pairs = [
        ("DNS:*.api.b", SubjectName("DNS", "a.api.b")),
        ("dns:API.b.", SubjectName("DNS", "api.b")),
        ("IP:2001:DB8:0::1", SubjectName("IP", "2001:db8::1")),
        ("URI:spiffe://T/a", SubjectName("URI", "spiffe://t/a")),
    ]
    for pattern, name in pairs:
        assert name_matches(pattern, name)
        assert pattern_key(pattern) in candidate_keys(name)
