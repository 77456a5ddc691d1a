"""RFC 9530 Content-Digest, the RFC 9421 §3.3 algorithms, the key policy and fingerprints."""

from __future__ import annotations

import subprocess

import pytest
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from pkiforge.auth.algorithms import (
    SignatureAlgorithm,
    algorithm_for_key,
    check_key_policy,
    fingerprint,
    load_public_key,
    new_key_id,
    sign,
    verify,
)
from pkiforge.auth.digest import content_digest, verify_content_digest
from pkiforge.errors import AuthenticationFailed, InvalidInput, WeakKey

from .support import CLIENT_KEYS, DATA, private_key

A = SignatureAlgorithm

# RFC 9530 Appendix B.1: the digest of {"hello": "world"}\n.
RFC9530_BODY = b'{"hello": "world"}\n'
RFC9530_SHA256 = "sha-256=:RK/0qy18MlBSVnWgjwz6lZEWjP/lF5HF9bvEF8FabDg=:"


def test_content_digest_matches_rfc9530() -> None:
    assert content_digest(RFC9530_BODY) == RFC9530_SHA256
    assert content_digest(b"") == "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:"
    verify_content_digest(RFC9530_SHA256, RFC9530_BODY)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (RFC9530_SHA256, "does not match body"),
        ("md5=:AAAA:", "no supported algorithm"),
        ("sha-256=1", "must be a byte sequence"),
        ("sha-256=:", "malformed content-digest"),
        (f"{RFC9530_SHA256}, sha-512=:AAAA:", "does not match body"),
    ],
)
def test_bad_digests_are_refused(value: str, reason: str) -> None:
    with pytest.raises(AuthenticationFailed, match=reason):
        verify_content_digest(value, b"other")


def test_unknown_digest_algorithms_are_ignored_and_sha512_works() -> None:
    verify_content_digest(f"md5=:AAAA:, {content_digest(b'x', 'sha-512')}", b"x")
    with pytest.raises(InvalidInput, match="sha-256 or sha-512"):
        content_digest(b"x", "md5")


@pytest.mark.parametrize(("name", "key_id", "algorithm"), CLIENT_KEYS, ids=lambda v: str(v))
def test_sign_and_verify_every_algorithm(name: str, key_id: str, algorithm: A) -> None:
    key = private_key(name)
    signature = sign(algorithm, key, b"base")
    assert verify(algorithm, key.public_key(), signature, b"base")
    assert not verify(algorithm, key.public_key(), signature, b"Base")


@pytest.mark.parametrize(("name", "size"), [("client-p256", 32), ("client-p384", 48)])
def test_ecdsa_signatures_are_raw_r_s_not_der(name: str, size: int) -> None:
    key = private_key(name)
    algorithm = algorithm_for_key(key)
    signature = sign(algorithm, key, b"base")
    assert len(signature) == 2 * size  # RFC 9421 §3.3.4: r || s, fixed width
    r = int.from_bytes(signature[:size], "big")
    assert r > 0
    assert not verify(algorithm, key.public_key(), signature[:-1], b"base")
    # A DER-encoded signature of the same value is refused: only r || s is RFC 9421.
    s = int.from_bytes(signature[size:], "big")
    assert not verify(algorithm, key.public_key(), encode_dss_signature(r, s), b"base")


def test_wrong_key_type_for_algorithm() -> None:
    ed = private_key("client-ed25519")
    with pytest.raises(InvalidInput, match="does not fit"):
        sign(A.RSA_PSS_SHA512, ed, b"x")
    assert not verify(A.ECDSA_P256_SHA256, ed.public_key(), b"x" * 64, b"x")
    p384 = private_key("client-p384")
    assert not verify(A.ECDSA_P256_SHA256, p384.public_key(), b"x" * 64, b"x")


@pytest.mark.parametrize(
    ("name", "error", "reason"),
    [
        ("weak-rsa1024", WeakKey, "1024 bits refused"),
        ("weak-rsa2048-e3", WeakKey, "exponent"),
        ("other-p521", InvalidInput, "secp521r1 refused"),
        ("other-secp256k1", InvalidInput, "secp256k1 refused"),
        ("other-ed448", InvalidInput, "Ed448"),
    ],
)
def test_key_policy_refuses(name: str, error: type[Exception], reason: str) -> None:
    key = private_key(name)
    with pytest.raises(error, match=reason):
        check_key_policy(key)
    with pytest.raises(error, match=reason):
        check_key_policy(key.public_key())


@pytest.mark.parametrize(("name", "key_id", "algorithm"), CLIENT_KEYS[::2], ids=lambda v: str(v))
def test_default_algorithm_follows_the_key(name: str, key_id: str, algorithm: A) -> None:
    assert algorithm_for_key(private_key(name)) is algorithm


def test_fingerprint_is_sha256_of_spki_like_openssl() -> None:
    pem = (DATA / "client-p256.pem").read_bytes()
    der = subprocess.run(
        ["openssl", "pkey", "-pubout", "-outform", "DER"],
        input=pem,
        capture_output=True,
        check=True,
    ).stdout
    expected = (
        subprocess.run(
            ["openssl", "dgst", "-sha256", "-r"], input=der, capture_output=True, check=True
        )
        .stdout.split()[0]
        .decode()
    )
    assert fingerprint(private_key("client-p256").public_key()) == expected


def test_load_public_key_applies_the_policy() -> None:
    from cryptography.hazmat.primitives import serialization

    def pem(name: str) -> bytes:
        return (
            private_key(name)
            .public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )

    assert fingerprint(load_public_key(pem("client-ed25519")))
    with pytest.raises(WeakKey):
        load_public_key(pem("weak-rsa1024"))
    with pytest.raises(InvalidInput, match="not a PEM public key"):
        load_public_key(b"-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")


def test_new_key_ids_are_url_safe_and_distinct() -> None:
    ids = {new_key_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(len(i) == 22 and i.replace("-", "").replace("_", "").isalnum() for i in ids)
