"""pkiforge.client.auth: what the signer puts on a request."""

from __future__ import annotations

import httpx
import pytest
import requests

from pkiforge.auth.algorithms import SignatureAlgorithm
from pkiforge.auth.canonical import HttpRequest, parse_signatures
from pkiforge.auth.verify import RequestVerifier
from pkiforge.client.auth import RequestSigner, SigningAuth, SigningRequestsAuth
from pkiforge.clock import FixedClock
from pkiforge.errors import InvalidInput, WeakKey

from .support import CLIENT_KEYS, NOW, private_key

A = SignatureAlgorithm


def _signed(auth: SigningAuth, request: httpx.Request) -> HttpRequest:
    request.read()
    next(auth.auth_flow(request))
    return HttpRequest(
        request.method, str(request.url), request.headers.multi_items(), request.content
    )


@pytest.mark.parametrize(("name", "key_id", "algorithm"), CLIENT_KEYS, ids=lambda v: str(v))
def test_signature_parameters_and_coverage(name: str, key_id: str, algorithm: A) -> None:
    auth = SigningAuth(
        key_id=key_id, private_key=private_key(name), algorithm=algorithm, clock=FixedClock(NOW)
    )
    signed = _signed(auth, httpx.Request("POST", "https://h.example/x?y=1", json={"a": 1}))
    (entry,) = parse_signatures(signed).values()
    assert [item.value for item in entry.covered.items] == [
        "@method",
        "@target-uri",
        "content-digest",
        "content-type",
    ]
    created = int(NOW.timestamp())
    assert entry.params["created"] == created
    assert entry.params["expires"] == created + 300
    assert entry.params["keyid"] == key_id
    assert entry.params["alg"] == algorithm.value
    assert len(str(entry.params["nonce"])) >= 16
    assert signed.field_lines("content-digest")[0].startswith("sha-256=:")


def test_no_body_means_no_digest_and_fresh_nonces() -> None:
    auth = SigningAuth(key_id="k", private_key=private_key("client-ed25519"), clock=FixedClock(NOW))
    first = _signed(auth, httpx.Request("GET", "https://h.example/"))
    second = _signed(auth, httpx.Request("GET", "https://h.example/"))
    (entry,) = parse_signatures(first).values()
    assert [i.value for i in entry.covered.items] == ["@method", "@target-uri"]
    assert not first.field_lines("content-digest")
    assert parse_signatures(second)["sig1"].params["nonce"] != entry.params["nonce"]


def test_signing_twice_replaces_the_old_signature() -> None:
    auth = SigningAuth(key_id="k", private_key=private_key("client-ed25519"), clock=FixedClock(NOW))
    request = httpx.Request("POST", "https://h.example/", content=b"x")
    _signed(auth, request)
    signed = _signed(auth, request)
    assert len(signed.field_lines("signature")) == 1
    assert len(signed.field_lines("content-digest")) == 1


def test_key_policy_applies_to_the_client() -> None:
    with pytest.raises(WeakKey):
        SigningAuth(key_id="k", private_key=private_key("weak-rsa1024"))
    with pytest.raises(InvalidInput, match="does not fit"):
        SigningAuth(
            key_id="k", private_key=private_key("client-ed25519"), algorithm=A.ECDSA_P256_SHA256
        )


def test_requests_variant_verifies(verifier: RequestVerifier) -> None:
    signer = RequestSigner(
        key_id="key-p256", private_key=private_key("client-p256"), clock=FixedClock(NOW)
    )
    prepared = requests.Request("POST", "https://h.example/x", json={"a": 1}).prepare()
    SigningRequestsAuth(signer)(prepared)
    body = prepared.body if isinstance(prepared.body, bytes) else str(prepared.body).encode()
    request = HttpRequest("POST", prepared.url or "", list(prepared.headers.items()), body)  # type: ignore[arg-type]
    assert verifier.verify(request).key_id == "key-p256"
