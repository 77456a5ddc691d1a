"""RFC 9421 §2 component values and the Signature/Signature-Input fields."""

from __future__ import annotations

import pytest

from pkiforge.auth.canonical import (
    HttpRequest,
    component_value,
    covered_components,
    parse_signatures,
    signature_base,
    signature_fields,
)
from pkiforge.auth.structured import Item, Token
from pkiforge.errors import InvalidInput

REQUEST = HttpRequest(
    "POST",
    "https://Example.COM:443/a%20b/c?x=1&y=two%20words&e=",
    [
        ("Host", "example.com"),
        ("Accept", "  application/json "),
        ("accept", "*/*"),
        ("Content-Digest", "sha-256=:AQID:,  sha-512=:BAUG:"),
        ("X-Empty", ""),
        ("Cache-Control", "max-age=60,\r\n  must-revalidate"),
    ],
)

VALUES: list[tuple[str, dict[str, object], str]] = [
    ("@method", {}, "POST"),
    ("@target-uri", {}, "https://example.com/a%20b/c?x=1&y=two%20words&e="),
    ("@authority", {}, "example.com"),
    ("@scheme", {}, "https"),
    ("@request-target", {}, "/a%20b/c?x=1&y=two%20words&e="),
    ("@path", {}, "/a%20b/c"),
    ("@query", {}, "?x=1&y=two%20words&e="),
    ("@query-param", {"name": "y"}, "two%20words"),
    ("@query-param", {"name": "e"}, ""),
    ("accept", {}, "application/json, */*"),  # §2.1: trimmed, combined with ", "
    ("x-empty", {}, ""),
    ("cache-control", {}, "max-age=60, must-revalidate"),  # obsolete folding -> one space
    ("content-digest", {"sf": True}, "sha-256=:AQID:, sha-512=:BAUG:"),  # §2.1.1
    ("content-digest", {"key": "sha-512"}, ":BAUG:"),  # §2.1.2
    ("accept", {"bs": True}, ":YXBwbGljYXRpb24vanNvbg==:, :Ki8q:"),  # §2.1.3
]


@pytest.mark.parametrize(
    ("name", "params", "expected"), VALUES, ids=[f"{v[0]}{v[1] or ''}" for v in VALUES]
)
def test_component_values(name: str, params: dict[str, object], expected: str) -> None:
    assert component_value(REQUEST, Item(name, params)) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("uri", "target", "authority", "query"),
    [
        ("http://h.example", "http://h.example/", "h.example", "?"),
        ("http://h.example:8080/p?", "http://h.example:8080/p", "h.example:8080", "?"),
        ("https://[2001:db8::1]:8443/p", "https://[2001:db8::1]:8443/p", "[2001:db8::1]:8443", "?"),
        ("HTTPS://H.example:443/P", "https://h.example/P", "h.example", "?"),
    ],
)
def test_target_normalisation(uri: str, target: str, authority: str, query: str) -> None:
    request = HttpRequest("GET", uri)
    assert component_value(request, Item("@target-uri")) == target
    assert component_value(request, Item("@authority")) == authority
    assert component_value(request, Item("@query")) == query


BAD: list[tuple[Item, str]] = [
    (Item("@status"), "unsupported derived component"),
    (Item("@signature-params"), "unsupported derived component"),
    (Item("@method", {"sf": True}), "takes no parameters"),
    (Item("@query-param"), "exactly one String parameter"),
    (Item("@query-param", {"name": "missing"}), "must occur exactly once"),
    (Item("Accept"), "lower-case"),
    (Item("date"), "'date' is missing"),
    (Item("accept", {"req": True}), "req/tr"),
    (Item("accept", {"sf": True}), "no known structured type"),
    (Item("content-digest", {"key": "md5"}), "no member"),
    (Item("accept", {"zz": True}), "unsupported parameter"),
    (Item(Token("accept")), "must be Strings"),
]


@pytest.mark.parametrize(("component", "reason"), BAD, ids=[str(b[0]) for b in BAD])
def test_bad_components_are_refused(component: Item, reason: str) -> None:
    with pytest.raises(InvalidInput, match=reason):
        component_value(REQUEST, component)


def test_relative_or_odd_target_uris_are_refused() -> None:
    for uri in ["/relative", "ftp://h/x", "https://h:99999/"]:
        with pytest.raises(InvalidInput):
            component_value(HttpRequest("GET", uri), Item("@authority"))


def test_newline_in_a_value_is_refused() -> None:
    request = HttpRequest("GET", "https://h/", [("x-a", '1\n"@method": GET')])
    with pytest.raises(InvalidInput, match="newlines"):
        component_value(request, Item("x-a"))


def test_signature_base_layout_and_duplicates() -> None:
    covered = covered_components(["@method", "@authority"], {"created": 1, "keyid": "k"})
    assert signature_base(REQUEST, covered) == (
        b'"@method": POST\n"@authority": example.com\n'
        b'"@signature-params": ("@method" "@authority");created=1;keyid="k"'
    )
    twice = covered_components(["@method", "@method"], {})
    with pytest.raises(InvalidInput, match="covered twice"):
        signature_base(REQUEST, twice)
    with pytest.raises(InvalidInput, match="cannot be a covered component"):
        signature_base(REQUEST, covered_components(["@signature-params"], {}))


def test_signature_fields_round_trip() -> None:
    covered = covered_components(["@method"], {"created": 5, "nonce": "n"})
    fields = signature_fields("sig1", covered, b"\x00\x01")
    assert fields == [
        ("Signature-Input", 'sig1=("@method");created=5;nonce="n"'),
        ("Signature", "sig1=:AAE=:"),
    ]
    entries = parse_signatures(HttpRequest("GET", "https://h/", fields))
    assert entries["sig1"].signature == b"\x00\x01"
    assert entries["sig1"].params == {"created": 5, "nonce": "n"}


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ([("Signature", "a=:AA==:")], "missing Signature-Input"),
        ([("Signature-Input", 'a=("@method")')], "missing Signature"),
        ([("Signature-Input", 'a=("@method")'), ("Signature", "b=:AA==:")], "different labels"),
        ([("Signature-Input", "a=1"), ("Signature", "a=:AA==:")], "must be an inner list"),
        ([("Signature-Input", "a=()"), ("Signature", 'a="x"')], "must be a byte sequence"),
    ],
)
def test_signature_fields_must_pair_up(headers: list[tuple[str, str]], reason: str) -> None:
    with pytest.raises(InvalidInput, match=reason):
        parse_signatures(HttpRequest("GET", "https://h/", headers))


def test_multiple_field_lines_are_combined() -> None:
    request = HttpRequest(
        "GET",
        "https://h/",
        [
            ("Signature-Input", "a=()"),
            ("Signature-Input", 'b=("@method")'),
            ("Signature", "a=:AA==:, b=:AQ==:"),
        ],
    )
    assert sorted(parse_signatures(request)) == ["a", "b"]
