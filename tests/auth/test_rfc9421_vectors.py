"""RFC 9421 Appendix B (and §4.3) examples: byte-identical signature bases, RFC signatures verify.

Keys, messages, Signature-Input values and signature values are the RFC's, verbatim.
"""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass

import pytest

from pkiforge.auth.algorithms import SignatureAlgorithm, sign, verify
from pkiforge.auth.canonical import HttpRequest, parse_signatures, signature_base
from pkiforge.auth.digest import content_digest
from pkiforge.auth.keys import InMemoryKeyResolver, RegisteredKey
from pkiforge.auth.nonces import InMemoryNonceStore
from pkiforge.auth.structured import serialize_dictionary
from pkiforge.auth.verify import RequestVerifier
from pkiforge.clock import FixedClock
from pkiforge.errors import AuthenticationFailed

from .support import private_key, public_key

A = SignatureAlgorithm
BODY = b'{"hello": "world"}'
DIGEST = (
    "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7"
    "BNNyealdVLvRwEmTHWXvJwew==:"
)

# RFC 9421 Appendix B.2: the test-request message.
TEST_REQUEST_HEADERS = [
    ("Host", "example.com"),
    ("Date", "Tue, 20 Apr 2021 02:07:55 GMT"),
    ("Content-Type", "application/json"),
    ("Content-Digest", DIGEST),
    ("Content-Length", "18"),
]
TEST_REQUEST_URI = "https://example.com/foo?param=Value&Pet=dog"

# RFC 9421 §4.3: the request as the TLS-terminating proxy forwards it.
PROXY_HEADERS = [
    ("Host", "origin.host.internal.example"),
    ("Date", "Tue, 20 Apr 2021 02:07:56 GMT"),
    ("Content-Type", "application/json"),
    ("Content-Digest", DIGEST),
    ("Content-Length", "18"),
    ("Forwarded", "for=192.0.2.123;host=example.com;proto=https"),
]
PROXY_URI = "https://origin.host.internal.example/foo?param=Value&Pet=dog"

# RFC 9421 Appendix B.3: the Client-Cert header a TLS-terminating proxy adds.
CLIENT_CERT = (
    ":MIIBqDCCAU6gAwIBAgIBBzAKBggqhkjOPQQDAjA6MRswGQYDVQQKDBJMZXQncyBBdXRoZW50aWNhdGUxGzAZBgNV"
    "BAMMEkxBIEludGVybWVkaWF0ZSBDQTAeFw0yMDAxMTQyMjU1MzNaFw0yMTAxMjMyMjU1MzNaMA0xCzAJBgNVBAMMAkJD"
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE8YnXXfaUgmnMtOXU/IncWalRhebrXmckC8vdgJ1p5Be5F/3YC8OthxM4"
    "+k1M6aEAEFcGzkJiNy6J84y7uzo9M6NyMHAwCQYDVR0TBAIwADAfBgNVHSMEGDAWgBRm3WjLa38lbEYCuiCPct0ZaSED"
    "2DAOBgNVHQ8BAf8EBAMCBsAwEwYDVR0lBAwwCgYIKwYBBQUHAwIwHQYDVR0RAQH/BBMwEYEPYmRjQGV4YW1wbGUuY29t"
    "MAoGCCqGSM49BAMCA0gAMEUCIBHda/r1vaL6G3VliL4/Di6YK0Q6bMjeSkC3dFCOOB8TAiEAx/kHSB4urmiZ0NX5r5Xa"
    "rmPk0wmuydBVoU4hBVZ1yhk=:"
)


@dataclass(frozen=True)
class Vector:
    section: str
    uri: str
    headers: list[tuple[str, str]]
    signature_input: str
    signature: str
    base: str
    algorithm: SignatureAlgorithm
    key: str
    deterministic: bool


VECTORS = [
    Vector(
        "B.2.1",
        TEST_REQUEST_URI,
        TEST_REQUEST_HEADERS,
        'sig-b21=();created=1618884473;keyid="test-key-rsa-pss";nonce="b3k2pp5k7z-50gnwp.yemd"',
        "sig-b21=:d2pmTvmbncD3xQm8E9ZV2828BjQWGgiwAaw5bAkgibUopemLJcWDy/lkbbHAve4cRAtx31Iq786U7it++wgGxbt"
        "Rxf8Udx7zFZsckzXaJMkA7ChG52eSkFxykJeNqsrWH5S+oxNFlD4dzVuwe8DhTSja8xxbR/Z2cOGdCbzR72rgFWhzx2VjBq"
        "JzsPLMIQKhO4DGezXehhWwE56YCE+O6c0mKZsfxVrogUvA4HELjVKWmAvtl6UnCh8jYzuVG5WSb/QEVPnP5TmcAnLH1g+s++"
        "v6d4s8m0gCw1fV5/SITLq9mhho8K3+7EPYTU8IU1bLhdxO5Nyt8C8ssinQ98Xw9Q==:",
        '"@signature-params": ();created=1618884473;keyid="test-key-rsa-pss"'
        ';nonce="b3k2pp5k7z-50gnwp.yemd"',
        A.RSA_PSS_SHA512,
        "rfc9421-test-key-rsa-pss",
        False,
    ),
    Vector(
        "B.2.2",
        TEST_REQUEST_URI,
        TEST_REQUEST_HEADERS,
        'sig-b22=("@authority" "content-digest" "@query-param";name="Pet");created=1618884473'
        ';keyid="test-key-rsa-pss";tag="header-example"',
        "sig-b22=:LjbtqUbfmvjj5C5kr1Ugj4PmLYvx9wVjZvD9GsTT4F7GrcQEdJzgI9qHxICagShLRiLMlAJjtq6N4CDfKtjvuJy"
        "E5qH7KT8UCMkSowOB4+ECxCmT8rtAmj/0PIXxi0A0nxKyB09RNrCQibbUjsLS/2YyFYXEu4TRJQzRw1rLEuEfY17SARYhpTl"
        "aqwZVtR8NV7+4UKkjqpcAoFqWFQh62s7Cl+H2fjBSpqfZUJcsIk4N6wiKYd4je2U/lankenQ99PZfB4jY3I5rSV2DSBVkSFs"
        "URIjYErOs0tFTQosMTAoxk//0RoKUqiYY8Bh0aaUEb0rQl3/XaVe4bXTugEjHSw==:",
        '"@authority": example.com\n'
        f'"content-digest": {DIGEST}\n'
        '"@query-param";name="Pet": dog\n'
        '"@signature-params": ("@authority" "content-digest" "@query-param";name="Pet")'
        ';created=1618884473;keyid="test-key-rsa-pss";tag="header-example"',
        A.RSA_PSS_SHA512,
        "rfc9421-test-key-rsa-pss",
        False,
    ),
    Vector(
        "B.2.3",
        TEST_REQUEST_URI,
        TEST_REQUEST_HEADERS,
        'sig-b23=("date" "@method" "@path" "@query" "@authority" "content-type" "content-digest"'
        ' "content-length");created=1618884473;keyid="test-key-rsa-pss"',
        "sig-b23=:bbN8oArOxYoyylQQUU6QYwrTuaxLwjAC9fbY2F6SVWvh0yBiMIRGOnMYwZ/5MR6fb0Kh1rIRASVxFkeGt683+qRp"
        "RRU5p2voTp768ZrCUb38K0fUxN0O0iC59DzYx8DFll5GmydPxSmme9v6ULbMFkl+V5B1TP/yPViV7KsLNmvKiLJH1pFkh/aYA"
        "2HXXZzNBXmIkoQoLd7YfW91kE9o/CCoC1xMy7JA1ipwvKvfrs65ldmlu9bpG6A9BmzhuzF8Eim5f8ui9eH8LZH896+QIF61ka"
        "39VBrohr9iyMUJpvRX2Zbhl5ZJzSRxpJyoEZAFL2FUo5fTIztsDZKEgM4cUA==:",
        '"date": Tue, 20 Apr 2021 02:07:55 GMT\n'
        '"@method": POST\n'
        '"@path": /foo\n'
        '"@query": ?param=Value&Pet=dog\n'
        '"@authority": example.com\n'
        '"content-type": application/json\n'
        f'"content-digest": {DIGEST}\n'
        '"content-length": 18\n'
        '"@signature-params": ("date" "@method" "@path" "@query" "@authority" "content-type"'
        ' "content-digest" "content-length");created=1618884473;keyid="test-key-rsa-pss"',
        A.RSA_PSS_SHA512,
        "rfc9421-test-key-rsa-pss",
        False,
    ),
    Vector(
        "B.2.6",
        TEST_REQUEST_URI,
        TEST_REQUEST_HEADERS,
        'sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length")'
        ';created=1618884473;keyid="test-key-ed25519"',
        "sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==:",
        '"date": Tue, 20 Apr 2021 02:07:55 GMT\n'
        '"@method": POST\n'
        '"@path": /foo\n'
        '"@authority": example.com\n'
        '"content-type": application/json\n'
        '"content-length": 18\n'
        '"@signature-params": ("date" "@method" "@path" "@authority" "content-type"'
        ' "content-length");created=1618884473;keyid="test-key-ed25519"',
        A.ED25519,
        "rfc9421-test-key-ed25519",
        True,
    ),
    Vector(
        "B.3",
        "https://service.internal.example/foo?param=Value&Pet=dog",
        [
            ("Host", "service.internal.example"),
            ("Date", "Tue, 20 Apr 2021 02:07:55 GMT"),
            ("Content-Type", "application/json"),
            ("Content-Length", "18"),
            ("Client-Cert", CLIENT_CERT),
        ],
        'ttrp=("@path" "@query" "@method" "@authority" "client-cert");created=1618884473'
        ';keyid="test-key-ecc-p256"',
        "ttrp=:xVMHVpawaAC/0SbHrKRs9i8I3eOs5RtTMGCWXm/9nvZzoHsIg6Mce9315T6xoklyy0yzhD9ah4JHRwMLOgmizw==:",
        '"@path": /foo\n'
        '"@query": ?param=Value&Pet=dog\n'
        '"@method": POST\n'
        '"@authority": service.internal.example\n'
        f'"client-cert": {CLIENT_CERT}\n'
        '"@signature-params": ("@path" "@query" "@method" "@authority" "client-cert")'
        ';created=1618884473;keyid="test-key-ecc-p256"',
        A.ECDSA_P256_SHA256,
        "rfc9421-test-key-ecc-p256",
        False,
    ),
    Vector(
        "4.3 proxy_sig",
        PROXY_URI,
        PROXY_HEADERS,
        'proxy_sig=("@method" "@authority" "@path" "content-digest" "content-type" "content-length"'
        ' "forwarded");created=1618884480;keyid="test-key-rsa";alg="rsa-v1_5-sha256"'
        ";expires=1618884540",
        "proxy_sig=:S6ZzPXSdAMOPjN/6KXfXWNO/f7V6cHm7BXYUh3YD/fRad4BCaRZxP+JH+8XY1I6+8Cy+CM5g92iHgxtRPz+M"
        "jniOaYmdkDcnL9cCpXJleXsOckpURl49GwiyUpZ10KHgOEe11sx3G2gxI8S0jnxQB+Pu68U9vVcasqOWAEObtNKKZd8tSFu7"
        "LB5YAv0RAGhB8tmpv7sFnIm9y+7X5kXQfi8NMaZaA8i2ZHwpBdg7a6CMfwnnrtflzvZdXAsD3LH2TwevU+/PBPv0B6NMNk93"
        "wUs/vfJvye+YuI87HU38lZHowtznbLVdp770I6VHR6WfgS9ddzirrswsE1w5o0LV/g==:",
        '"@method": POST\n'
        '"@authority": origin.host.internal.example\n'
        '"@path": /foo\n'
        f'"content-digest": {DIGEST}\n'
        '"content-type": application/json\n'
        '"content-length": 18\n'
        '"forwarded": for=192.0.2.123;host=example.com;proto=https\n'
        '"@signature-params": ("@method" "@authority" "@path" "content-digest" "content-type"'
        ' "content-length" "forwarded");created=1618884480;keyid="test-key-rsa"'
        ';alg="rsa-v1_5-sha256";expires=1618884540',
        A.RSA_V1_5_SHA256,
        "rfc9421-test-key-rsa",
        True,
    ),
]


def _request(vector: Vector) -> HttpRequest:
    headers = [
        *vector.headers,
        ("Signature-Input", vector.signature_input),
        ("Signature", vector.signature),
    ]
    return HttpRequest("POST", vector.uri, headers, BODY)


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v.section)
def test_signature_base_is_byte_identical_and_rfc_signature_verifies(vector: Vector) -> None:
    request = _request(vector)
    (entry,) = parse_signatures(request).values()
    base = signature_base(request, entry.covered)
    assert base == vector.base.encode("ascii")
    assert verify(vector.algorithm, public_key(vector.key), entry.signature, base)
    # Our serialisation of the parsed fields is the RFC's text, character for character.
    assert serialize_dictionary({entry.label: entry.covered}) == vector.signature_input
    tampered = base.replace(b"POST", b"PUT ") if b"POST" in base else base + b" "
    assert not verify(vector.algorithm, public_key(vector.key), entry.signature, tampered)


@pytest.mark.parametrize("vector", [v for v in VECTORS if v.deterministic], ids=lambda v: v.section)
def test_deterministic_algorithms_reproduce_the_rfc_signature(vector: Vector) -> None:
    ours = sign(vector.algorithm, private_key(vector.key), vector.base.encode("ascii"))
    _, _, encoded = vector.signature.partition("=")
    assert base64.b64encode(ours).decode() == encoded.strip(":")


def test_rfc_test_request_digest_is_our_sha512_digest() -> None:
    assert content_digest(BODY, "sha-512") == DIGEST


def test_rfc_example_is_valid_crypto_but_refused_by_policy() -> None:
    """B.2.6 verifies cryptographically, yet it has no nonce: the verifier still refuses it."""
    vector = next(v for v in VECTORS if v.section == "B.2.6")
    key = RegisteredKey(
        key_id="test-key-ed25519",
        public_key=public_key(vector.key),
        algorithm=A.ED25519,
        client_name="rfc",
        created_at=_at(1618884000),
    )
    clock = FixedClock(_at(1618884480))
    verifier = RequestVerifier(
        keys=InMemoryKeyResolver([key]), nonces=InMemoryNonceStore(clock=clock), clock=clock
    )
    with pytest.raises(AuthenticationFailed, match="'nonce' is required"):
        verifier.verify(_request(vector))


def _at(seconds: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)
