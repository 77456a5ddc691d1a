"""The origin documents' "PKI" scheme: a client written as they describe it still verifies.

The client below follows `pki_client.py` of the origin documents line for line, with the two
fixes `pkiforge.auth.compat` documents: it declares the headers it signs in X-Signed-Headers
(instead of signing every header), and it signs the canonical bytes (instead of a SHA-256
hash of them that RSA-PSS then hashes again).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import secrets

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from pkiforge.auth.canonical import HttpRequest
from pkiforge.auth.keys import InMemoryKeyResolver
from pkiforge.auth.nonces import InMemoryNonceStore
from pkiforge.auth.verify import RequestVerifier, VerifierPolicy
from pkiforge.clock import FixedClock
from pkiforge.errors import AuthenticationFailed

from .support import NOW, private_key

BASE_URL = "https://api.example.com"


class OriginStylePKIClient:
    """The origin's PKIClient.sign_request, with declared headers and no pre-hash."""

    def __init__(self, private_key: rsa.RSAPrivateKey, key_id: str, now: dt.datetime) -> None:
        self.private_key = private_key
        self.key_id = key_id
        self.now = now

    def sign_request(self, request_data: dict[str, object], signed: list[str]) -> dict[str, str]:
        timestamp = int(self.now.timestamp())
        nonce = self.generate_nonce()
        headers: dict[str, str] = request_data["headers"]  # type: ignore[assignment]
        declared = {k.lower().strip(): v.strip() for k, v in headers.items() if k.lower() in signed}
        payload = {
            "method": request_data["method"],
            "url": request_data["url"],
            "headers": declared,
            "body": request_data["body"],
            "timestamp": timestamp,
            "nonce": nonce,
        }
        canonical_payload = json.dumps(payload, separators=(",", ":"), sort_keys=True)
        signature = self.create_signature(canonical_payload)
        extra = {"X-Signed-Headers": ", ".join(signed)} if signed else {}
        return {
            **headers,
            **extra,
            "Authorization": f"PKI {self.key_id}:{signature}",
            "X-Timestamp": str(timestamp),
            "X-Nonce": nonce,
        }

    def create_signature(self, payload: str) -> str:
        signature = self.private_key.sign(
            payload.encode("utf-8"),
            padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.MAX_LENGTH),
            hashes.SHA256(),
        )
        return base64.b64encode(signature).decode("utf-8")

    def generate_nonce(self) -> str:
        return base64.urlsafe_b64encode(secrets.token_bytes(16)).decode().rstrip("=")

    def request(
        self, method: str, endpoint: str, data: object = None, signed: tuple[str, ...] = ()
    ) -> HttpRequest:
        url = f"{BASE_URL}{endpoint}"
        request_headers = {"Content-Type": "application/json", "User-Agent": "Client/1.0"}
        body = json.dumps(data) if data else ""
        request_data = {
            "method": method.upper(),
            "url": url,
            "headers": request_headers,
            "body": body,
        }
        headers = self.sign_request(request_data, list(signed))
        return HttpRequest(method.upper(), url, list(headers.items()), body.encode("utf-8"))


@pytest.fixture
def legacy_verifier() -> RequestVerifier:
    from .support import registered

    clock = FixedClock(NOW)
    keys = InMemoryKeyResolver([registered("client-rsa2048", "legacy-1", client_name="old-app")])
    policy = VerifierPolicy(accept_legacy=True)
    return RequestVerifier(
        keys=keys, nonces=InMemoryNonceStore(clock=clock), clock=clock, policy=policy
    )


@pytest.fixture
def client() -> OriginStylePKIClient:
    return OriginStylePKIClient(private_key("client-rsa2048"), "legacy-1", NOW)  # type: ignore[arg-type]


def test_origin_style_client_verifies(
    legacy_verifier: RequestVerifier, client: OriginStylePKIClient
) -> None:
    request = client.request("POST", "/api/v1/scans?x=1", {"target": "10.0.0.1"}, ("content-type",))
    identity = legacy_verifier.verify(request)
    assert (identity.key_id, identity.client_name, identity.scheme) == (
        "legacy-1",
        "old-app",
        "pki-legacy",
    )


def test_proxy_added_headers_do_not_break_it(
    legacy_verifier: RequestVerifier, client: OriginStylePKIClient
) -> None:
    request = client.request("GET", "/api/v1/vulnerabilities")
    proxied = HttpRequest(
        request.method,
        request.target_uri,
        [*request.headers, ("Via", "1.1 lb"), ("X-Forwarded-For", "192.0.2.7")],
        request.body,
    )
    legacy_verifier.verify(proxied)


def _replace(request: HttpRequest, name: str, value: str | None) -> HttpRequest:
    headers = [(k, v) for k, v in request.headers if k.lower() != name.lower()]
    if value is not None:
        headers.append((name, value))
    return HttpRequest(request.method, request.target_uri, headers, request.body)


@pytest.mark.parametrize(
    ("what", "change", "reason"),
    [
        ("declared header", lambda r: _replace(r, "Content-Type", "text/plain"), "does not verify"),
        (
            "declaration stripped",
            lambda r: _replace(r, "X-Signed-Headers", None),
            "does not verify",
        ),
        (
            "body",
            lambda r: HttpRequest(r.method, r.target_uri, r.headers, b'{"x": 2}'),
            "does not verify",
        ),
        (
            "url",
            lambda r: HttpRequest(r.method, r.target_uri + "&y=2", r.headers, r.body),
            "does not verify",
        ),
        ("no nonce", lambda r: _replace(r, "X-Nonce", None), "missing X-Nonce"),
        ("bad timestamp", lambda r: _replace(r, "X-Timestamp", "yesterday"), "Unix seconds"),
        ("stale", lambda r: _replace(r, "X-Timestamp", str(int(NOW.timestamp()) - 400)), "expired"),
        ("future", lambda r: _replace(r, "X-Timestamp", str(int(NOW.timestamp()) + 60)), "future"),
        ("bad header", lambda r: _replace(r, "Authorization", "PKI nocolon"), "PKI <key_id>"),
        ("unknown key", lambda r: _replace(r, "Authorization", "PKI other:AAAA"), "unknown key"),
        (
            "declared but absent",
            lambda r: _replace(r, "X-Signed-Headers", "x-missing"),
            "is missing",
        ),
    ],
)
def test_tampered_legacy_requests_are_refused(
    legacy_verifier: RequestVerifier,
    client: OriginStylePKIClient,
    what: str,
    change: object,
    reason: str,
) -> None:
    request = client.request("POST", "/api/v1/scans?x=1", {"target": "10.0.0.1"}, ("content-type",))
    with pytest.raises(AuthenticationFailed, match=reason):
        legacy_verifier.verify(change(request))  # type: ignore[operator]


def test_replayed_legacy_request_is_refused(
    legacy_verifier: RequestVerifier, client: OriginStylePKIClient
) -> None:
    request = client.request("GET", "/api/v1/vulnerabilities")
    legacy_verifier.verify(request)
    with pytest.raises(AuthenticationFailed, match="nonce reused"):
        legacy_verifier.verify(request)


def test_the_origin_pre_hashed_signature_is_not_accepted(
    legacy_verifier: RequestVerifier, client: OriginStylePKIClient
) -> None:
    """Signing SHA-256(payload) with a scheme that hashes again is the weak point we fixed."""
    original = client.create_signature
    client.create_signature = lambda payload: original(hashlib.sha256(payload.encode()).hexdigest())  # type: ignore[method-assign]
    with pytest.raises(AuthenticationFailed, match="does not verify"):
        legacy_verifier.verify(client.request("GET", "/api/v1/vulnerabilities"))


def test_legacy_scheme_is_off_unless_enabled(client: OriginStylePKIClient) -> None:
    from .support import registered

    clock = FixedClock(NOW)
    keys = InMemoryKeyResolver([registered("client-rsa2048", "legacy-1")])
    strict = RequestVerifier(keys=keys, nonces=InMemoryNonceStore(clock=clock), clock=clock)
    with pytest.raises(AuthenticationFailed, match="missing Signature-Input"):
        strict.verify(client.request("GET", "/api/v1/vulnerabilities"))
