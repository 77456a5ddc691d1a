"""Interoperability with the independent `http-message-signatures` package, both ways."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
import requests
from http_message_signatures import (
    HTTPMessageSigner,
    HTTPMessageVerifier,
    InvalidSignature,
    MappingKeyResolver,
    algorithms,
)

from pkiforge.auth.algorithms import SignatureAlgorithm
from pkiforge.auth.canonical import HttpRequest
from pkiforge.auth.verify import RequestVerifier
from pkiforge.clock import FixedClock
from pkiforge.errors import AuthenticationFailed

from .support import CLIENT_KEYS, NOW, private_key, public_key, sign, signer_for

THEIRS = {
    SignatureAlgorithm.RSA_PSS_SHA512: algorithms.RSA_PSS_SHA512,
    SignatureAlgorithm.RSA_V1_5_SHA256: algorithms.RSA_V1_5_SHA256,
    SignatureAlgorithm.ECDSA_P256_SHA256: algorithms.ECDSA_P256_SHA256,
    SignatureAlgorithm.ECDSA_P384_SHA384: algorithms.ECDSA_P384_SHA384,
    SignatureAlgorithm.ED25519: algorithms.ED25519,
}
URL = "https://api.example.com/v1/things?page=2&sort=name"
BODY = b'{"name": "db-1", "tags": ["a", "b"]}'
CASES = [pytest.param(*case, id=case[2].value) for case in CLIENT_KEYS]


def _resolver(name: str, key_id: str) -> MappingKeyResolver:
    return MappingKeyResolver(
        public_keys={key_id: public_key(name)}, private_keys={key_id: private_key(name)}
    )


def _prepared(method: str, body: bytes) -> requests.PreparedRequest:
    headers = {"Content-Type": "application/json"} if body else {}
    return requests.Request(method, URL, headers=headers, data=body or None).prepare()


def _ours(prepared: requests.PreparedRequest, body: bytes) -> HttpRequest:
    headers = [(k, str(v)) for k, v in prepared.headers.items()]
    return HttpRequest(prepared.method or "", prepared.url or "", headers, body)


@pytest.mark.parametrize(("name", "key_id", "algorithm"), CASES)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_what_they_sign_we_verify(
    verifier: RequestVerifier, name: str, key_id: str, algorithm: SignatureAlgorithm, method: str
) -> None:
    body = BODY if method == "POST" else b""
    prepared = _prepared(method, body)
    signer = HTTPMessageSigner(
        signature_algorithm=THEIRS[algorithm], key_resolver=_resolver(name, key_id)
    )
    signer.sign(
        prepared,
        key_id=key_id,
        created=NOW,
        expires=NOW + dt.timedelta(minutes=5),
        nonce=f"their-nonce-{algorithm}-{method}",
        covered_component_ids=("@method", "@target-uri", "@authority"),
        body=body if body else None,
    )
    identity = verifier.verify(_ours(prepared, body))
    assert identity.key_id == key_id
    if body:
        assert '"content-digest"' in identity.covered


@pytest.mark.parametrize(("name", "key_id", "algorithm"), CASES)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_what_we_sign_they_verify(
    name: str, key_id: str, algorithm: SignatureAlgorithm, method: str
) -> None:
    body = BODY if method == "POST" else b""
    headers = [("Content-Type", "application/json")] if body else []
    now = dt.datetime.now(dt.UTC)
    ours = sign(
        signer_for(name, key_id, algorithm, clock=FixedClock(now)), method, URL, headers, body
    )
    prepared = requests.Request(
        method, URL, headers=dict(ours.headers), data=body or None
    ).prepare()
    verifier = HTTPMessageVerifier(
        signature_algorithm=THEIRS[algorithm], key_resolver=_resolver(name, key_id)
    )
    required = ["@method", "@target-uri"] + (["content-digest", "content-type"] if body else [])
    (result,) = verifier.verify(prepared, body=body, require_components=required)
    assert result.parameters["keyid"] == key_id
    assert result.parameters["alg"] == algorithm.value
    # ...and a changed body fails their check too.
    tampered = dataclasses.replace(ours, body=body + b" ")
    if body:
        forged = requests.Request(
            method, URL, headers=dict(tampered.headers), data=tampered.body
        ).prepare()
        with pytest.raises(InvalidSignature):
            verifier.verify(forged, body=tampered.body)


def test_their_signature_without_nonce_is_refused(verifier: RequestVerifier) -> None:
    name, key_id, algorithm = CLIENT_KEYS[-1]
    prepared = _prepared("GET", b"")
    signer = HTTPMessageSigner(
        signature_algorithm=THEIRS[algorithm], key_resolver=_resolver(name, key_id)
    )
    signer.sign(
        prepared, key_id=key_id, created=NOW, covered_component_ids=("@method", "@target-uri")
    )
    with pytest.raises(AuthenticationFailed, match="'nonce' is required"):
        verifier.verify(_ours(prepared, b""))
