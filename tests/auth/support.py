"""Shared helpers for the auth tests: committed keys, a fixed time, signing shortcuts."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from pkiforge.auth.algorithms import (
    PrivateKey,
    PublicKey,
    SignatureAlgorithm,
    algorithm_for_key,
)
from pkiforge.auth.canonical import HttpRequest
from pkiforge.auth.keys import RegisteredKey
from pkiforge.client.auth import RequestSigner
from pkiforge.clock import FixedClock

DATA = Path(__file__).parent / "data"
NOW = dt.datetime(2026, 3, 2, 12, 0, 0, tzinfo=dt.UTC)

# (key file, key id, algorithm) for every algorithm we support.
CLIENT_KEYS: list[tuple[str, str, SignatureAlgorithm]] = [
    ("client-rsa2048", "key-rsa-pss", SignatureAlgorithm.RSA_PSS_SHA512),
    ("client-rsa2048-b", "key-rsa-v15", SignatureAlgorithm.RSA_V1_5_SHA256),
    ("client-p256", "key-p256", SignatureAlgorithm.ECDSA_P256_SHA256),
    ("client-p384", "key-p384", SignatureAlgorithm.ECDSA_P384_SHA384),
    ("client-ed25519", "key-ed25519", SignatureAlgorithm.ED25519),
]


@functools.cache
def private_key(name: str) -> PrivateKey:
    key = serialization.load_pem_private_key((DATA / f"{name}.pem").read_bytes(), None)
    return key  # type: ignore[return-value]


def public_key(name: str) -> PublicKey:
    path = DATA / f"{name}.pub.pem"
    if path.exists():
        # Accepts SubjectPublicKeyInfo and PKCS#1 "RSA PUBLIC KEY" (RFC 9421 B.1.1) alike.
        return serialization.load_pem_public_key(path.read_bytes())  # type: ignore[return-value]
    return private_key(name).public_key()


def registered(
    name: str,
    key_id: str,
    algorithm: SignatureAlgorithm | None = None,
    client_name: str = "client-a",
) -> RegisteredKey:
    key = public_key(name)
    return RegisteredKey(
        key_id=key_id,
        public_key=key,
        algorithm=algorithm or algorithm_for_key(key),
        client_name=client_name,
        created_at=NOW - dt.timedelta(days=1),
    )


def signer_for(
    name: str,
    key_id: str,
    algorithm: SignatureAlgorithm | None = None,
    clock: FixedClock | None = None,
    expires_in: int = 300,
) -> RequestSigner:
    return RequestSigner(
        key_id=key_id,
        private_key=private_key(name),
        algorithm=algorithm,
        clock=clock or FixedClock(NOW),
        expires_in=expires_in,
    )


def sign(
    signer: RequestSigner,
    method: str = "GET",
    url: str = "https://api.example.com/v1/things?page=2",
    headers: Sequence[tuple[str, str]] = (),
    body: bytes = b"",
) -> HttpRequest:
    """A request as the server would see it after `signer` signed it."""
    added = signer.signature_headers(method, url, list(headers), body)
    return HttpRequest(method, url, [*headers, *added], body)


def sign_custom(
    name: str,
    request: HttpRequest,
    components: Sequence[str],
    params: dict[str, object],
    algorithm: SignatureAlgorithm | None = None,
) -> HttpRequest:
    """Sign `request` covering exactly `components` with exactly `params` (for bad cases)."""
    from pkiforge.auth.algorithms import sign as raw_sign
    from pkiforge.auth.canonical import covered_components, signature_base, signature_fields

    key = private_key(name)
    covered = covered_components(components, params)  # type: ignore[arg-type]
    signature = raw_sign(algorithm or algorithm_for_key(key), key, signature_base(request, covered))
    fields = signature_fields("sig1", covered, signature)
    return HttpRequest(
        request.method, request.target_uri, [*request.headers, *fields], request.body
    )
