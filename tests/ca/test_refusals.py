"""Bad input gets a clear error naming the field and reason, and nothing is written."""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from pkiforge.ca.issue_request import IssueRequest
from pkiforge.clock import FixedClock
from pkiforge.errors import (
    BadPassphrase,
    InvalidCSR,
    InvalidInput,
    InvalidName,
    NotFound,
    PkiError,
    PolicyViolation,
    WeakKey,
)
from pkiforge.wiring import Pki, build_pki

from .helpers import NOW, PASSPHRASE, csr_bytes, leaf_key, make_pki, make_settings, snapshot


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pki]:
    p = make_pki(tmp_path_factory.mktemp("refusals") / "home", clock=FixedClock(NOW))
    yield p
    p.close()


def make_csr(
    cn: str | None = "web.example.internal",
    names: Sequence[x509.GeneralName] = (),
    extra_cn: bool = False,
) -> bytes:
    """A CSR signed by the committed P-256 key, with the given subject and SANs."""
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)] if cn else []
    if extra_cn:
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, "second.example.internal"))
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attrs))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(names)), critical=False)
    return builder.sign(leaf_key("p256"), hashes.SHA256()).public_bytes(Encoding.PEM)


def refused(
    pki: Pki,
    attempt: Callable[[], Any],
    error: type[PkiError],
    field: str | None,
    words: str,
) -> PkiError:
    """Run `attempt`, expect `error` naming `field` and `words`, and no write anywhere."""
    before = snapshot(pki)
    with pytest.raises(error) as info:
        attempt()
    assert type(info.value) is error, f"{type(info.value).__name__}: {info.value}"
    assert words in str(info.value)
    if field is not None:
        assert info.value.data["field"] == field
    assert snapshot(pki) == before
    return info.value


def issue_csr(pki: Pki, csr: bytes, **kwargs: Any) -> Callable[[], Any]:
    def attempt() -> Any:
        kwargs.setdefault("service_id", "web")
        return pki.certificates.issue(pki.certificates.request_from_csr(csr, **kwargs))

    return attempt


CERT_PEM_PLACEHOLDER = b"cert"  # replaced at run time by a real certificate PEM

BAD_CSRS = [
    (b"", InvalidCSR, "CSR is empty"),
    (b"  \n\t", InvalidCSR, "CSR is empty"),
    (b"this is not a CSR", InvalidCSR, "could not be parsed"),
    (b"\x30\x03\x02\x01\x00", InvalidCSR, "could not be parsed"),
    (
        b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
        InvalidCSR,
        "could not be parsed",
    ),
    (b"A" * 70_000, InvalidCSR, "larger than 65536 bytes"),
    (CERT_PEM_PLACEHOLDER, InvalidCSR, "could not be parsed"),
    (csr_bytes("bad-signature"), InvalidCSR, "signature does not verify"),
]


@pytest.mark.parametrize(
    ("data", "error", "words"),
    BAD_CSRS,
    ids=[
        "empty",
        "whitespace",
        "garbage",
        "der-garbage",
        "pem-garbage",
        "too-large",
        "certificate-not-csr",
        "wrong-signature",
    ],
)
def test_bad_csr(pki: Pki, data: bytes, error: type[PkiError], words: str) -> None:
    if data is CERT_PEM_PLACEHOLDER:
        root = pki.hierarchy.get("root").certificate
        assert root is not None
        data = root.public_bytes(Encoding.PEM)
    refused(pki, issue_csr(pki, data), error, "csr", words)


@pytest.mark.parametrize(
    ("key", "words"),
    [
        ("rsa1024", "RSA key of 1024 bits is too weak: at least 2048 required"),
        ("rsa2048-e3", "RSA public exponent must be 65537"),
        ("dsa2048", "DSAPublicKey keys are not allowed"),
        ("p192", "elliptic curve secp192r1 is not allowed"),
        ("p521", "elliptic curve secp521r1 is not allowed"),
        ("secp256k1", "elliptic curve secp256k1 is not allowed"),
        ("ed448", "Ed448PublicKey keys are not allowed"),
    ],
    ids=["rsa1024", "rsa-e3", "dsa", "p192", "secp521r1", "secp256k1", "ed448"],
)
def test_weak_or_unknown_key_in_csr(pki: Pki, key: str, words: str) -> None:
    refused(pki, issue_csr(pki, csr_bytes(key)), WeakKey, "csr", words)


def test_unknown_key_type_given_directly(pki: Pki) -> None:
    public = x25519.X25519PrivateKey.generate().public_key()
    request = IssueRequest("web.example.internal", service_id="web", public_key=public)
    refused(
        pki,
        lambda: pki.certificates.issue(request),  # type: ignore[arg-type]
        WeakKey,
        "public_key",
        "X25519PublicKey keys are not allowed",
    )


def test_der_csr_is_accepted(pki: Pki) -> None:
    """Positive control for the table above: the same key as DER issues fine."""
    from tests.conftest import data_file

    record = issue_csr(pki, data_file("csr-p256.der"))()
    assert record.common_name == "web.example.internal"


LONG = ".".join(["a" * 60] * 5)  # 304 characters
BAD_SANS = [
    ("DNS:bad_label.example.internal", "service", InvalidName, "invalid label 'bad_label'"),
    ("DNS:-lead.example.internal", "service", InvalidName, "invalid label '-lead'"),
    ("DNS:trail-.example.internal", "service", InvalidName, "invalid label 'trail-'"),
    ("DNS:a..example.internal", "service", InvalidName, "invalid label ''"),
    (f"DNS:{'a' * 64}.example.internal", "service", InvalidName, "invalid label"),
    (f"DNS:{LONG}", "service", InvalidName, "longer than 253 characters"),
    ("DNS:bücher.example.internal", "service", InvalidName, "not ASCII"),
    ("DNS:", "service", InvalidName, "empty DNS name"),
    ("DNS:*.com", "server", PolicyViolation, "too broad"),
    ("DNS:*", "server", PolicyViolation, "too broad"),
    ("DNS:a.*.b", "server", PolicyViolation, "whole leftmost label"),
    ("DNS:foo*.x.y", "server", PolicyViolation, "whole leftmost label"),
    ("DNS:*.*.example.internal", "server", PolicyViolation, "whole leftmost label"),
    ("DNS:*.example.internal", "service", PolicyViolation, "not allowed by this profile"),
    ("DNS:*.example.internal", "client", PolicyViolation, "not allowed by this profile"),
    ("URI:https://exa mple.internal/x", "service", InvalidName, "not an absolute ASCII URI"),
    ("URI:spiffe://example.internal/we b", "service", InvalidName, "not an absolute ASCII"),
    ("URI:relative/path", "service", InvalidName, "not an absolute ASCII URI"),
    ("URI:https://", "service", InvalidName, "has no authority"),
    ("URI:https://bücher.example/", "service", InvalidName, "not an absolute ASCII URI"),
    ("IP:999.1.1.1", "service", InvalidName, "is not an IP address"),
    ("IP:10.0.0.0/8", "service", InvalidName, "is not an IP address"),
    ("EMAIL:ops@example.internal", "service", InvalidName, "unknown SAN type 'EMAIL'"),
    (
        "URI:spiffe://example.internal/other",
        "service",
        PolicyViolation,
        "names service 'other'",
    ),
    ("URI:spiffe://evil.internal/web", "service", PolicyViolation, "another trust domain"),
]


@pytest.mark.parametrize(
    ("san", "profile", "error", "words"),
    BAD_SANS,
    ids=[
        "underscore",
        "leading-hyphen",
        "trailing-hyphen",
        "empty-label",
        "label-64",
        "name-304",
        "unicode",
        "empty",
        "wildcard-tld",
        "bare-wildcard",
        "wildcard-middle",
        "wildcard-partial",
        "double-wildcard",
        "wildcard-service-profile",
        "wildcard-client-profile",
        "uri-space",
        "spiffe-space",
        "uri-relative",
        "uri-no-authority",
        "uri-unicode",
        "ip-bad",
        "ip-network",
        "email-kind",
        "spiffe-other-service",
        "spiffe-other-domain",
    ],
)
def test_bad_requested_name(
    pki: Pki, san: str, profile: str, error: type[PkiError], words: str
) -> None:
    attempt = issue_csr(pki, csr_bytes("p256"), extra_names=[san], profile=profile)
    refused(pki, attempt, error, "san", words)


@pytest.mark.parametrize(
    ("names", "profile", "error", "words"),
    [
        ([x509.DNSName("*.com")], "server", PolicyViolation, "too broad"),
        ([x509.DNSName("a.*.b")], "server", PolicyViolation, "whole leftmost label"),
        ([x509.DNSName("*.example.internal")], "service", PolicyViolation, "not allowed"),
        ([x509.DNSName("bad_label.example")], "service", InvalidName, "invalid label"),
        (
            [x509.RFC822Name("ops@example.internal")],
            "service",
            InvalidName,
            "RFC822Name is not supported",
        ),
        (
            [x509.IPAddress(ipaddress.ip_network("10.0.0.0/8"))],
            "service",
            InvalidName,
            "not a host address",
        ),
        (
            [x509.UniformResourceIdentifier("https://exa mple.internal/")],
            "service",
            InvalidName,
            "not an absolute ASCII URI",
        ),
    ],
    ids=[
        "wildcard-tld",
        "wildcard-middle",
        "wildcard-forbidden",
        "bad-label",
        "email",
        "ip-network",
        "uri-space",
    ],
)
def test_bad_name_inside_the_csr(
    pki: Pki,
    names: list[x509.GeneralName],
    profile: str,
    error: type[PkiError],
    words: str,
) -> None:
    refused(pki, issue_csr(pki, make_csr(names=names), profile=profile), error, "san", words)


def test_csr_with_two_common_names(pki: Pki) -> None:
    attempt = issue_csr(pki, make_csr(extra_cn=True))
    refused(pki, attempt, InvalidCSR, "csr", "more than one common name")


def test_csr_without_any_name(pki: Pki) -> None:
    attempt = issue_csr(pki, make_csr(cn=None))
    refused(pki, attempt, InvalidInput, "csr", "no common name and no DNS or IP SAN")


@pytest.mark.parametrize(
    ("service_id", "words"),
    [
        ("Web", "service id 'Web' is invalid"),
        ("team/web", "service id 'team/web' is invalid"),
        ("-web", "service id '-web' is invalid"),
        ("web-", "service id 'web-' is invalid"),
        ("web service", "service id 'web service' is invalid"),
        ("wéb", "service id 'wéb' is invalid"),
        ("w" * 129, "is invalid: use 1-128"),
    ],
    ids=["capital", "slash", "leading-hyphen", "trailing-hyphen", "space", "unicode", "129"],
)
def test_bad_service_id(pki: Pki, service_id: str, words: str) -> None:
    attempt = issue_csr(pki, csr_bytes("p256"), service_id=service_id)
    refused(pki, attempt, InvalidName, "service_id", words)


@pytest.mark.parametrize(
    ("common_name", "profile", "error", "words"),
    [
        ("https://web.example.internal/", "service", InvalidName, "must be a DNS name or an IP"),
        ("web_1.example.internal", "service", InvalidName, "invalid label 'web_1'"),
        ("*.example.internal", "service", PolicyViolation, "not allowed by this profile"),
        ("*.internal", "server", PolicyViolation, "too broad"),
        ("wéb.example.internal", "service", InvalidName, "not ASCII"),
    ],
    ids=["uri", "underscore", "wildcard-forbidden", "wildcard-tld", "unicode"],
)
def test_bad_common_name(
    pki: Pki, common_name: str, profile: str, error: type[PkiError], words: str
) -> None:
    request = IssueRequest(
        common_name,
        service_id="web",
        profile=profile,
        public_key=leaf_key("p256").public_key(),
    )
    refused(pki, lambda: pki.certificates.issue(request), error, "common_name", words)


def test_too_many_names(pki: Pki) -> None:
    extra = [f"DNS:n{i}.example.internal" for i in range(100)]
    attempt = issue_csr(pki, csr_bytes("p256"), extra_names=extra)
    refused(pki, attempt, PolicyViolation, "san", "too many names: at most 100")


@pytest.mark.parametrize(
    "validity", [dt.timedelta(0), dt.timedelta(days=-1)], ids=["zero", "negative"]
)
def test_non_positive_validity(pki: Pki, validity: dt.timedelta) -> None:
    attempt = issue_csr(pki, csr_bytes("p256"), validity=validity)
    refused(pki, attempt, PolicyViolation, "validity", "must be positive")


def test_unknown_profile(pki: Pki) -> None:
    attempt = issue_csr(pki, csr_bytes("p256"), profile="admin")
    refused(pki, attempt, InvalidInput, "profile", "unknown profile 'admin'")


def test_unknown_issuer(pki: Pki) -> None:
    attempt = issue_csr(pki, csr_bytes("p256"), issuer="nope")
    refused(pki, attempt, NotFound, "issuer", "no CA named 'nope'")


WRONG = b"not-the-passphrase-42"


def test_wrong_passphrase_refuses_and_never_echoes_it(pki: Pki) -> None:
    other = build_pki(make_settings(pki.settings.home), WRONG, FixedClock(NOW))
    try:
        request = other.certificates.request_from_csr(csr_bytes("p256"), service_id="web")
        error = refused(
            pki,
            lambda: other.certificates.issue(request),
            BadPassphrase,
            None,
            "wrong passphrase or corrupted file",
        )
        assert str(error).startswith("CA 'services': could not decrypt ")  # which key it was
        assert error.data["ca"] == "services"
        for secret in (WRONG, PASSPHRASE):
            for text in (str(error), repr(error), repr(error.args), repr(error.data)):
                assert secret.decode() not in text
        assert error.__cause__ is None
        assert error.__suppress_context__ is True
    finally:
        other.close()


def test_short_passphrase_is_refused(pki: Pki) -> None:
    other = build_pki(make_settings(pki.settings.home), b"short", FixedClock(NOW))
    try:
        request = other.certificates.request_from_csr(csr_bytes("p256"), service_id="web")
        error = refused(
            pki,
            lambda: other.certificates.issue(request),
            InvalidInput,
            "passphrase",
            "at least 12 characters",
        )
        assert "short" not in str(error).replace("12 characters", "")
    finally:
        other.close()


def test_wrong_passphrase_on_a_fresh_home_writes_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    pki = make_pki(home)
    pki.close()
    other = build_pki(make_settings(home), WRONG, FixedClock(NOW))
    try:
        refused(
            other,
            lambda: other.revocation.generate_crl("services"),
            BadPassphrase,
            None,
            "could not decrypt",
        )
    finally:
        other.close()
