"""SAN parsing and validation (RFC 5280 §4.2.1.6), service ids and SPIFFE ids."""

from __future__ import annotations

import pytest

from pkiforge.errors import InvalidName, PolicyViolation
from pkiforge.x509.names import (
    SubjectName,
    dedupe,
    parse_san,
    service_from_spiffe,
    spiffe_id,
    validate_dns_name,
    validate_service_id,
    validate_trust_domain,
)


@pytest.mark.parametrize(
    ("text", "wild", "expected"),
    [
        ("DNS:Web.Example.Internal", False, SubjectName("DNS", "web.example.internal")),
        ("dns:web.example.internal.", False, SubjectName("DNS", "web.example.internal")),
        ("web.example.internal", False, SubjectName("DNS", "web.example.internal")),
        ("localhost", False, SubjectName("DNS", "localhost")),
        ("xn--bcher-kva.example", False, SubjectName("DNS", "xn--bcher-kva.example")),
        (f"{'a' * 63}.example", False, SubjectName("DNS", f"{'a' * 63}.example")),
        ("DNS:*.example.internal", True, SubjectName("DNS", "*.example.internal")),
        ("IP:10.0.0.1", False, SubjectName("IP", "10.0.0.1")),
        ("10.0.0.1", False, SubjectName("IP", "10.0.0.1")),
        ("IP:2001:DB8::1", False, SubjectName("IP", "2001:db8::1")),
        ("2001:db8::1", False, SubjectName("IP", "2001:db8::1")),
        ("URI:https://a.example/x?y=1", False, SubjectName("URI", "https://a.example/x?y=1")),
        ("spiffe://td.internal/svc", False, SubjectName("URI", "spiffe://td.internal/svc")),
        ("URI:urn:uuid:1234", False, SubjectName("URI", "urn:uuid:1234")),
    ],
    ids=["dns-case", "dns-trailing-dot", "bare-dns", "single-label", "idna-a-label", "label-63",
         "wildcard", "ip", "bare-ip", "ipv6-canonical", "bare-ipv6", "uri", "bare-spiffe",
         "urn"],
)  # fmt: skip
def test_parse_san_accepts(text: str, wild: bool, expected: SubjectName) -> None:
    assert parse_san(text, allow_wildcard=wild) == expected


@pytest.mark.parametrize(
    ("name", "error", "words"),
    [
        ("*.com", PolicyViolation, "too broad"),
        ("a.*.b", PolicyViolation, "whole leftmost label"),
        ("foo*.x.y", PolicyViolation, "whole leftmost label"),
        ("*foo.x.y", PolicyViolation, "whole leftmost label"),
        ("*.*.x.y", PolicyViolation, "whole leftmost label"),
        ("x.y.*", PolicyViolation, "whole leftmost label"),
        ("ünï.example", InvalidName, "not ASCII"),
        ("a b.example", InvalidName, "invalid label 'a b'"),
        ("a" * 64 + ".example", InvalidName, "invalid label"),
        (".".join(["abc"] * 64), InvalidName, "longer than 253"),
        ("", InvalidName, "empty DNS name"),
        (".", InvalidName, "empty DNS name"),
    ],
    ids=["tld", "middle", "partial", "partial-suffix", "double", "last", "unicode", "space",
         "label-64", "too-long", "empty", "root-dot"],
)  # fmt: skip
def test_dns_name_refusals(name: str, error: type[Exception], words: str) -> None:
    with pytest.raises(error) as info:
        validate_dns_name(name, allow_wildcard=True, field="dns")
    assert type(info.value) is error
    assert words in str(info.value)
    assert info.value.field == "dns"  # type: ignore[attr-defined]


def test_wildcard_refused_when_profile_forbids() -> None:
    with pytest.raises(PolicyViolation, match="not allowed by this profile"):
        validate_dns_name("*.example.internal", allow_wildcard=False)


@pytest.mark.parametrize(
    "value",
    ["web", "web-1", "a.b_c", "0", "x" * 128],
    ids=["plain", "hyphen", "dot-us", "digit", "128"],
)
def test_service_ids_accepted(value: str) -> None:
    assert validate_service_id(value) == value


@pytest.mark.parametrize(
    "value",
    ["Web", "a/b", "-a", "a-", "", "a b", "é", "x" * 129, "a:b"],
    ids=["capital", "slash", "lead", "trail", "empty", "space", "unicode", "129", "colon"],
)
def test_service_ids_refused(value: str) -> None:
    with pytest.raises(InvalidName) as info:
        validate_service_id(value)
    assert info.value.field == "service_id"
    assert "lower-case letters, digits" in str(info.value)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("spiffe://td.internal/web", "web"),
        ("spiffe://other.internal/web", None),
        ("spiffe://td.internal/a/b", None),
        ("spiffe://td.internal/", None),
        ("spiffe://td.internal/Web", None),
        ("spiffe://td.internal/web?x=1", None),
        ("https://td.internal/web", None),
    ],
    ids=["own", "other-domain", "nested", "empty", "capital", "query", "https"],
)
def test_service_from_spiffe(uri: str, expected: str | None) -> None:
    assert service_from_spiffe(uri, "td.internal") == expected


def test_spiffe_id_and_trust_domain() -> None:
    assert spiffe_id("td.internal", "web") == SubjectName("URI", "spiffe://td.internal/web")
    assert validate_trust_domain(" TD.Internal ") == "td.internal"
    with pytest.raises(InvalidName, match="trust domain 'td/x' is invalid"):
        validate_trust_domain("td/x")


def test_dedupe_keeps_first_in_order() -> None:
    a, b = SubjectName("DNS", "a.x"), SubjectName("IP", "10.0.0.1")
    assert dedupe([a, b, a, b]) == [a, b]
