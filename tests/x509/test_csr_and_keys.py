"""CSR loading and checking, the key policy, key types and signature hashes."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from pkiforge.errors import InvalidCSR, InvalidInput, WeakKey
from pkiforge.x509.csr import check_csr, load_csr
from pkiforge.x509.extensions import eku_oids
from pkiforge.x509.keys import (
    check_public_key,
    describe_key,
    generate_key,
    parse_key_type,
    signature_hash,
)
from pkiforge.x509.names import SubjectName
from tests.conftest import data_file

GOOD = ["rsa2048", "p256", "p384", "ed25519"]


@pytest.mark.parametrize("key", GOOD)
def test_good_csrs_pass(key: str) -> None:
    checked = check_csr(load_csr(data_file(f"csr-{key}.pem")), allow_wildcard=False)
    assert checked.common_name == "web.example.internal"
    assert checked.names == (
        SubjectName("DNS", "web.example.internal"),
        SubjectName("IP", "10.0.0.7"),
    )


def test_der_and_pem_load_the_same_csr() -> None:
    assert load_csr(data_file("csr-p256.der")) == load_csr(data_file("csr-p256.pem"))


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "CSR is empty"),
        (b"garbage", "could not be parsed"),
        (b"-----BEGIN CERTIFICATE REQUEST-----\n!!\n-----END CERTIFICATE REQUEST-----", "parsed"),
        (b"0" * 65537, "larger than"),
    ],
    ids=["empty", "garbage", "bad-pem", "too-large"],
)
def test_load_csr_refuses(data: bytes, words: str) -> None:
    with pytest.raises(InvalidCSR) as info:
        load_csr(data)
    assert words in str(info.value)
    assert info.value.field == "csr"


def test_bad_signature_is_refused() -> None:
    with pytest.raises(InvalidCSR, match="signature does not verify"):
        check_csr(load_csr(data_file("csr-bad-signature.pem")), allow_wildcard=False)


@pytest.mark.parametrize(
    ("key", "words"),
    [
        ("rsa1024", "1024 bits is too weak"),
        ("rsa2048-e3", "exponent must be 65537"),
        ("dsa2048", "DSAPublicKey keys are not allowed"),
        ("p192", "secp192r1 is not allowed"),
        ("p521", "secp521r1 is not allowed"),
        ("secp256k1", "secp256k1 is not allowed"),
        ("ed448", "Ed448PublicKey keys are not allowed"),
    ],
    ids=["rsa1024", "rsa-e3", "dsa", "p192", "p521", "secp256k1", "ed448"],
)
def test_weak_keys_in_csrs(key: str, words: str) -> None:
    with pytest.raises(WeakKey) as info:
        check_csr(load_csr(data_file(f"csr-{key}.pem")), allow_wildcard=False)
    assert words in str(info.value)
    assert info.value.field == "csr"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rsa4096", "rsa4096"),
        ("RSA-2048", "rsa2048"),
        ("rsa", "rsa2048"),
        ("ecdsa-p384", "p384"),
        ("secp256r1", "p256"),
        (" Ed25519 ", "ed25519"),
    ],
)
def test_parse_key_type(text: str, expected: str) -> None:
    assert parse_key_type(text) == expected


@pytest.mark.parametrize("text", ["rsa1024", "dsa", "p521", "ed448", ""])
def test_parse_key_type_refuses(text: str) -> None:
    with pytest.raises(InvalidInput, match="unknown key type") as info:
        parse_key_type(text)
    assert info.value.field == "key_type"


@pytest.mark.parametrize(
    ("key_type", "hash_name", "described"),
    [
        ("p256", "sha256", "ECDSA P-256"),
        ("p384", "sha384", "ECDSA P-384"),
        ("ed25519", None, "Ed25519"),
    ],
)
def test_signature_hash_and_description(
    key_type: str, hash_name: str | None, described: str
) -> None:
    key = generate_key(key_type)  # type: ignore[arg-type]
    check_public_key(key.public_key())
    algorithm = signature_hash(key.public_key())
    assert (algorithm.name if algorithm else None) == hash_name
    assert describe_key(key.public_key()) == described


def test_rsa_signature_hash_and_description() -> None:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = load_pem_private_key(data_file("key-rsa2048.pem"), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    assert isinstance(signature_hash(key.public_key()), hashes.SHA256)
    assert describe_key(key.public_key()) == "RSA-2048"
    assert isinstance(generate_key("p256"), ec.EllipticCurvePrivateKey)
    assert isinstance(generate_key("ed25519"), ed25519.Ed25519PrivateKey)


def test_unknown_eku_name() -> None:
    with pytest.raises(InvalidInput, match="unknown extended key usage 'timeStamping'") as info:
        eku_oids(["serverAuth", "timeStamping"])
    assert info.value.field == "ekus"
