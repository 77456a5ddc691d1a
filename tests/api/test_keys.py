"""/api/v1/keys in-process (ASGITransport): registry, signed requests as an alternative to mTLS."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from prometheus_client import generate_latest

from pkiforge.api.deps import mtls_verifier
from pkiforge.api.keyauth import KeyAuth
from pkiforge.client.auth import SigningAuth
from pkiforge.settings import AuthSettings
from pkiforge.wiring import Pki, build_app
from tests.auth.support import private_key
from tests.ca.helpers import make_pki

from .helpers import SERVICE_HEADER, WHITELIST, fake_verifier

ADMIN = {SERVICE_HEADER: "ops"}
NOT_ADMIN = {SERVICE_HEADER: "billing"}
KEYS_ONLY = {SERVICE_HEADER: "key-manager"}  # whitelisted for `keys` and nothing else


class KeysApi:
    """An app over a fresh PKI, a client, and helpers to register keys and sign as them."""

    def __init__(self, home: Path, **auth: Any) -> None:
        import yaml

        home.mkdir(parents=True, exist_ok=True)
        key_manager = {"service_id": "key-manager", "allowed_operations": ["keys"]}
        whitelist = {**WHITELIST, "services": [*WHITELIST["services"], key_manager]}
        (home / "service_whitelist.yaml").write_text(yaml.safe_dump(whitelist))
        self.pki: Pki = make_pki(home)
        settings = self.pki.settings.model_copy(update={"auth": AuthSettings(**auth)})
        self.app = build_app(settings, self.pki)
        self.app.dependency_overrides[mtls_verifier] = fake_verifier
        transport = httpx.ASGITransport(self.app, client=("10.9.8.7", 40000))
        self.client = httpx.AsyncClient(transport=transport, base_url="https://testserver")

    @property
    def signing(self) -> KeyAuth:
        signing = self.app.state.pkiforge.signing
        assert isinstance(signing, KeyAuth)
        return signing

    async def register(self, name: str = "client-ed25519", client: str = "shop") -> str:
        public = private_key(name).public_key()
        pem = public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        body = {"public_key": pem.decode(), "client_name": client, "email": "dev@shop.example"}
        response = await self.client.post("/api/v1/keys", json=body, headers=ADMIN)
        assert response.status_code == 201, response.text
        return str(response.json()["key_id"])

    def auth(self, key_id: str, name: str = "client-ed25519") -> SigningAuth:
        return SigningAuth(key_id=key_id, private_key=private_key(name), clock=self.pki.ctx.clock)


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[KeysApi]:
    made = KeysApi(tmp_path / "home")
    yield made
    await made.client.aclose()
    made.signing.close()
    made.pki.close()


async def test_register_returns_id_fingerprint_and_algorithm(api: KeysApi) -> None:
    public = private_key("client-p256").public_key()
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    key_id = await api.register("client-p256")
    response = await api.client.get(f"/api/v1/keys/{key_id}", headers=ADMIN)
    body = response.json()
    assert response.status_code == 200
    assert body["fingerprint"] == hashlib.sha256(der).hexdigest()
    assert body["algorithm"] == "ecdsa-p256-sha256"
    assert (body["client_name"], body["status"]) == ("shop", "active")
    assert len(key_id) >= 22 and key_id.replace("-", "").replace("_", "").isalnum()


REFUSED = [
    ("not-pem", {"public_key": "hello"}, 422, "public_key"),
    ("bad-email", {"email": "nope"}, 400, "email"),
    ("unknown-field", {"colour": "red"}, 422, None),
    ("no-name", {"client_name": ""}, 422, None),
]


@pytest.mark.parametrize(
    ("changes", "status", "field"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED]
)
async def test_bad_registrations_are_refused_with_the_field(
    api: KeysApi, changes: dict[str, Any], status: int, field: str | None
) -> None:
    pem = (
        private_key("client-ed25519")
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    body = {"public_key": pem.decode(), "client_name": "shop", **changes}
    response = await api.client.post("/api/v1/keys", json=body, headers=ADMIN)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    if field:  # a 400 names it in `field`, a 422 in `errors`
        problem = response.json()
        assert field in [problem.get("field"), *(e["field"] for e in problem.get("errors", []))]


async def test_the_same_key_twice_is_409(api: KeysApi) -> None:
    await api.register()
    pem = (
        private_key("client-ed25519")
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    body = {"public_key": pem.decode(), "client_name": "other"}
    response = await api.client.post("/api/v1/keys", json=body, headers=ADMIN)
    assert response.status_code == 409


WHO = [
    ("no-credentials", {}, 401),
    ("not-admin", NOT_ADMIN, 403),
    ("admin", ADMIN, 200),
    ("keys-operation", KEYS_ONLY, 200),
]


@pytest.mark.parametrize(("headers", "status"), [w[1:] for w in WHO], ids=[w[0] for w in WHO])
async def test_only_admins_manage_keys(api: KeysApi, headers: dict[str, str], status: int) -> None:
    response = await api.client.get("/api/v1/keys", headers=headers)
    assert response.status_code == status, response.text


async def test_the_keys_operation_grants_key_management_and_nothing_else(api: KeysApi) -> None:
    public = private_key("client-p256").public_key()
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    body = {"public_key": pem, "client_name": "shop", "email": "dev@shop.example"}
    registered = await api.client.post("/api/v1/keys", json=body, headers=KEYS_ONLY)
    assert registered.status_code == 201, registered.text
    listed = await api.client.get("/api/v1/certificates", headers=KEYS_ONLY)
    assert listed.status_code == 403, listed.text


@pytest.mark.parametrize("name", ["client-ed25519", "client-p256", "client-rsa2048"])
async def test_a_signed_request_authenticates_as_the_key(api: KeysApi, name: str) -> None:
    key_id = await api.register(name)
    response = await api.client.get("/api/v1/keys/whoami", auth=api.auth(key_id, name))
    assert response.status_code == 200, response.text
    assert response.json() == {
        "kind": "key",
        "id": key_id,
        "client_name": "shop",
        "algorithm": response.json()["algorithm"],
        "scheme": "rfc9421",
    }
    mtls = await api.client.get("/api/v1/keys/whoami", headers=NOT_ADMIN)
    assert mtls.json()["kind"] == "service" and mtls.json()["scheme"] == "mtls"


async def test_replay_and_tampering_are_refused_with_a_reason(api: KeysApi) -> None:
    key_id = await api.register()
    request = api.client.build_request("GET", "/api/v1/keys/whoami")
    api.auth(key_id).sign(request)
    assert (await api.client.send(request)).status_code == 200
    replay = await api.client.send(request)
    assert (replay.status_code, replay.json()["detail"]) == (401, "nonce reused")
    tampered = api.client.build_request("GET", f"/api/v1/keys/{key_id}")
    api.auth(key_id).sign(tampered)
    tampered.url = tampered.url.copy_with(path=f"/api/v1/keys/{key_id}/usage")
    refused = await api.client.send(tampered)
    assert (refused.status_code, refused.json()["detail"]) == (401, "signature does not verify")


async def test_revoked_key_is_refused_at_once_on_this_replica(api: KeysApi) -> None:
    key_id = await api.register()
    auth = api.auth(key_id)
    assert (await api.client.get("/api/v1/keys/whoami", auth=auth)).status_code == 200
    revoke = await api.client.post(
        f"/api/v1/keys/{key_id}/revoke", json={"reason": "leaked"}, headers=ADMIN
    )
    assert revoke.json()["status"] == "revoked"
    refused = await api.client.get("/api/v1/keys/whoami", auth=auth)
    assert (refused.status_code, refused.json()["detail"]) == (401, "key revoked")


async def test_a_revocation_reason_with_control_characters_is_refused_by_the_schema(
    api: KeysApi,
) -> None:
    """The document says what the registry refuses, so a schema-valid reason is accepted."""
    key_id = await api.register()
    for sent in (
        api.client.post(f"/api/v1/keys/{key_id}/revoke", json={"reason": "a\u0019"}, headers=ADMIN),
        api.client.delete(f"/api/v1/keys/{key_id}", params={"reason": "a\x0c"}, headers=ADMIN),
    ):
        r = await sent
        assert r.status_code == 422, r.text
        assert r.json()["errors"][0]["field"] in ("reason", "query.reason")
    schema = (await api.client.get("/openapi.json")).json()
    body = schema["components"]["schemas"]["RevocationIn"]["properties"]["reason"]
    assert any(o.get("pattern") == "^[^\\x00-\\x1f\\x7f]*$" for o in body["anyOf"]), body
    r = await api.client.post(f"/api/v1/keys/{key_id}/revoke", json={"reason": "ok"}, headers=ADMIN)
    assert r.json()["status"] == "revoked"


async def test_a_key_reads_and_revokes_itself_but_nothing_else(api: KeysApi) -> None:
    mine = await api.register()
    other = await api.register("client-p256", client="other")
    auth = api.auth(mine)
    assert (await api.client.get(f"/api/v1/keys/{mine}", auth=auth)).status_code == 200
    assert (await api.client.get(f"/api/v1/keys/{other}", auth=auth)).status_code == 403
    assert (await api.client.get("/api/v1/keys", auth=auth)).status_code == 403
    response = await api.client.delete(f"/api/v1/keys/{mine}", auth=auth)
    assert (response.status_code, response.json()["revocation_reason"]) == (200, "deleted")


async def test_list_filters_and_pages(api: KeysApi) -> None:
    ids = [await api.register(n, client=c) for n, c in [
        ("client-ed25519", "a"), ("client-p256", "b"), ("client-p384", "a")
    ]]  # fmt: skip
    await api.client.post(f"/api/v1/keys/{ids[0]}/revoke", json={}, headers=ADMIN)
    cases = [
        ("", 3),
        ("?client_name=a", 2),
        ("?status=revoked", 1),
        ("?status=active&client_name=a", 1),
    ]
    for query, count in cases:
        page = (await api.client.get(f"/api/v1/keys{query}", headers=ADMIN)).json()
        assert len(page["items"]) == count, query
    first = (await api.client.get("/api/v1/keys?limit=2", headers=ADMIN)).json()
    assert first["next_offset"] == 2
    rest = (await api.client.get("/api/v1/keys?limit=2&offset=2", headers=ADMIN)).json()
    assert rest["next_offset"] is None
    assert {k["key_id"] for k in first["items"] + rest["items"]} == set(ids)


async def test_usage_events_and_metrics(api: KeysApi) -> None:
    key_id = await api.register()
    auth = api.auth(key_id)
    await api.client.get("/api/v1/keys/whoami", auth=auth)
    await api.client.get("/api/v1/keys/whoami", auth=auth)
    bad = api.client.build_request("GET", "/api/v1/keys/whoami")
    auth.sign(bad)
    bad.headers["signature"] = bad.headers["signature"].replace("=:", "=:AAAA")
    assert (await api.client.send(bad)).status_code == 401
    assert api.signing.recorder.flush() == 3
    usage = (await api.client.get(f"/api/v1/keys/{key_id}/usage", headers=ADMIN)).json()
    assert [(u["successes"], u["failures"]) for u in usage] == [(2, 1)]
    events = (await api.client.get(f"/api/v1/keys/events?key_id={key_id}", headers=ADMIN)).json()
    assert [e["outcome"] for e in events] == ["failure", "success", "success"]
    assert events[0]["address"] == "10.9.8.7" and events[0]["path"] == "/api/v1/keys/whoami"
    assert (await api.client.get(f"/api/v1/keys/{key_id}", headers=ADMIN)).status_code == 200
    text = generate_latest(api.app.state.pkiforge.registry).decode()
    assert 'pkiforge_auth_attempts_total{outcome="success",scheme="rfc9421"} 2.0' in text
    assert 'pkiforge_auth_keys{status="active"} 1.0' in text


async def test_repeated_failures_from_one_address_get_429(tmp_path: Path) -> None:
    api = KeysApi(tmp_path / "home", max_failures=3, block_seconds=60)
    try:
        key_id = await api.register()
        for _ in range(3):
            request = api.client.build_request("GET", "/api/v1/keys/whoami")
            api.auth(key_id).sign(request)
            request.headers["signature"] = request.headers["signature"].replace("=:", "=:AA")
            assert (await api.client.send(request)).status_code == 401
        blocked = await api.client.get("/api/v1/keys/whoami", auth=api.auth(key_id))
        assert blocked.status_code == 429
        assert int(blocked.headers["retry-after"]) > 0
    finally:
        await api.client.aclose()
        api.pki.close()


async def test_a_nonce_store_that_cannot_answer_refuses_with_503(tmp_path: Path) -> None:
    api = KeysApi(tmp_path / "home", redis_url="redis://127.0.0.1:1/0")
    try:
        key_id = await api.register()
        response = await api.client.get("/api/v1/keys/whoami", auth=api.auth(key_id))
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/problem+json"
    finally:
        await api.client.aclose()
        api.pki.close()


async def test_registration_and_revocation_are_audited(api: KeysApi) -> None:
    key_id = await api.register()
    await api.client.post(f"/api/v1/keys/{key_id}/revoke", json={"reason": "r"}, headers=ADMIN)
    with api.pki.store.transaction() as tx:
        entries = [(e.action, e.subject, e.actor) for e in tx.audit.iterate()]
    assert ("key.register", key_id, "service:ops") in entries
    assert ("key.revoke", key_id, "service:ops") in entries


@pytest.mark.parametrize(
    "query",
    ["offset=100000000000000000000", "offset=-1", "limit=0", "limit=501", "status=lost"],
    ids=["huge-offset", "negative-offset", "zero-limit", "big-limit", "unknown-status"],
)
async def test_list_refuses_out_of_range_pages_with_422(api: KeysApi, query: str) -> None:
    response = await api.client.get(f"/api/v1/keys?{query}", headers=ADMIN)
    assert response.status_code == 422, response.text
