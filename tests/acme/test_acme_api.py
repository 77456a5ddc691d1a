"""The ACME endpoints in-process: JWS rules of RFC 8555 §6.2 with hand-built requests.

Every refusal is problem+json with an `urn:ietf:params:acme:error:*` type, never a 500.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from pkiforge.acme.models import Status
from pkiforge.acme.service import new_external_key
from pkiforge.actor import OPERATOR
from pkiforge.settings import AcmeSettings
from pkiforge.store.acme_repos import SqlAcmeRepository
from tests.acme import jose
from tests.api.helpers import Api, make_api, make_csr

BASE = "https://testserver/acme/services"
JOSE = {"content-type": "application/jose+json"}
WHITELIST = {
    "services": [
        {
            "service_id": "web",
            "allowed_operations": ["request", "revoke", "download"],
            "allowed_names": ["*.web.internal"],
        }
    ]
}


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    made = make_api(
        tmp_path / "home",
        whitelist=WHITELIST,
        max_body=1024 * 1024,
        acme=AcmeSettings(enabled=True),
    )
    yield made
    await made.client.aclose()
    made.pki.close()


async def nonce(api: Api) -> str:
    r = await api.client.head(f"{BASE}/new-nonce")
    assert r.status_code == 200
    return r.headers["replay-nonce"]


def problem(
    r: httpx.Response, kind: str, status: int | None = None, *, nonce: bool = True
) -> dict[str, Any]:
    assert r.headers["content-type"] == "application/problem+json", r.text
    body: dict[str, Any] = r.json()
    assert body["type"] == f"urn:ietf:params:acme:error:{kind}", body
    assert r.status_code == (status or body["status"]) and r.status_code < 500
    assert (
        bool(r.headers.get("replay-nonce")) is nonce
    )  # a client refused with badNonce retries with it
    return body


def binding(api: Api, key: jose.Key) -> dict[str, str]:
    external = new_external_key("web", api.pki.ctx.clock.now())
    SqlAcmeRepository(api.pki.store).add_external_key(external, OPERATOR)
    return jose.eab(external.kid, external.mac_key, key.jwk(), f"{BASE}/new-account")


async def new_account(api: Api, key: jose.Key) -> httpx.Response:
    url = f"{BASE}/new-account"
    header = {"jwk": key.jwk(), "nonce": await nonce(api), "url": url}
    payload = {"termsOfServiceAgreed": True, "externalAccountBinding": binding(api, key)}
    return await api.client.post(url, content=jose.jws(key, header, payload), headers=JOSE)


async def test_directory_lists_the_endpoints_and_requires_eab(api: Api) -> None:
    for path in ("/acme/directory", "/acme/services/directory"):
        r = await api.client.get(path)
        assert r.status_code == 200
        body = r.json()
        assert body["newAccount"] == f"{BASE}/new-account"
        assert body["meta"]["externalAccountRequired"] is True


async def test_unknown_issuer_is_an_acme_404(api: Api) -> None:
    problem(await api.client.get("/acme/nope/directory"), "malformed", 404, nonce=False)
    problem(await api.client.get("/acme/root/directory"), "malformed", 404, nonce=False)


@pytest.mark.parametrize("alg", ["ES256", "ES384", "RS256", "EdDSA"])
async def test_new_account_with_each_algorithm(api: Api, alg: str) -> None:
    key = jose.fresh(alg)
    r = await new_account(api, key)
    assert r.status_code == 201, r.text
    assert r.headers["location"].startswith(f"{BASE}/account/")
    assert r.json()["status"] == "valid"
    again = await new_account(api, key)  # the same key finds its account
    assert again.status_code == 200 and again.headers["location"] == r.headers["location"]


async def test_eab_is_required(api: Api) -> None:
    key, url = jose.fresh("ES256"), f"{BASE}/new-account"
    header = {"jwk": key.jwk(), "nonce": await nonce(api), "url": url}
    r = await api.client.post(url, content=jose.jws(key, header, {}), headers=JOSE)
    problem(r, "externalAccountRequired", 400)


async def test_eab_with_a_wrong_mac_key_is_unauthorized(api: Api) -> None:
    key, url = jose.fresh("ES256"), f"{BASE}/new-account"
    good = binding(api, key)
    forged = jose.eab(json.loads(jose.base64.urlsafe_b64decode(good["protected"] + "=="))["kid"],
                      b"0" * 32, key.jwk(), url)  # fmt: skip
    header = {"jwk": key.jwk(), "nonce": await nonce(api), "url": url}
    payload = {"externalAccountBinding": forged}
    r = await api.client.post(url, content=jose.jws(key, header, payload), headers=JOSE)
    problem(r, "unauthorized", 403)


async def test_eab_binds_one_account_only(api: Api) -> None:
    first, second, url = jose.fresh("ES256"), jose.fresh("ES256"), f"{BASE}/new-account"
    used = binding(api, first)
    header = {"jwk": first.jwk(), "nonce": await nonce(api), "url": url}
    body = jose.jws(first, header, {"externalAccountBinding": used})
    assert (await api.client.post(url, content=body, headers=JOSE)).status_code == 201
    # the same binding key MACing the second account's key
    kid = json.loads(jose.base64.urlsafe_b64decode(used["protected"] + "=="))["kid"]
    row = SqlAcmeRepository(api.pki.store).external_key(kid)
    assert row is not None and row.account_id is not None
    again = jose.eab(kid, row.mac_key, second.jwk(), url)
    header = {"jwk": second.jwk(), "nonce": await nonce(api), "url": url}
    body = jose.jws(second, header, {"externalAccountBinding": again})
    problem(await api.client.post(url, content=body, headers=JOSE), "unauthorized", 403)


# the bad-JWS table: each request is otherwise a valid newAccount


async def _bad(api: Api, case: str) -> httpx.Response:
    key, url = jose.fresh("ES256"), f"{BASE}/new-account"
    header: dict[str, Any] = {"jwk": key.jwk(), "nonce": await nonce(api), "url": url}
    payload: Any = {"externalAccountBinding": binding(api, key)}
    alg = None
    headers = JOSE
    if case == "wrong-nonce":
        header["nonce"] = "bm90LWEtbm9uY2U"
    elif case == "no-nonce":
        del header["nonce"]
    elif case == "wrong-url":
        header["url"] = f"{BASE}/new-order"
    elif case == "alg-none":
        alg = "none"
    elif case == "alg-hs256":
        alg = "HS256"
    elif case == "alg-key-mismatch":
        alg = "ES384"  # a P-256 key
    elif case == "jwk-and-kid":
        header["kid"] = f"{BASE}/account/x"
    elif case == "oversized":
        payload = {"pad": "x" * (65 * 1024)}
    elif case == "content-type":
        headers = {"content-type": "application/json"}
    body = jose.jws(key, header, payload, alg=alg)
    if case == "bad-signature":
        outer = json.loads(body)
        outer["signature"] = jose.b64(b"\0" * 64)
        body = json.dumps(outer).encode()
    elif case == "unprotected-header":
        outer = json.loads(body)
        outer["header"] = {"kid": "x"}
        body = json.dumps(outer).encode()
    elif case == "not-json":
        body = b"not json"
    elif case == "compact":
        outer = json.loads(body)
        body = f'"{outer["protected"]}.{outer["payload"]}.{outer["signature"]}"'.encode()
    return await api.client.post(url, content=body, headers=headers)


@pytest.mark.parametrize(
    ("case", "kind", "status"),
    [
        ("wrong-nonce", "badNonce", 400),
        ("no-nonce", "badNonce", 400),
        ("wrong-url", "unauthorized", 403),
        ("alg-none", "badSignatureAlgorithm", 400),
        ("alg-hs256", "badSignatureAlgorithm", 400),
        ("alg-key-mismatch", "badSignatureAlgorithm", 400),
        ("jwk-and-kid", "malformed", 400),
        ("oversized", "malformed", 413),
        ("bad-signature", "malformed", 400),
        ("unprotected-header", "malformed", 400),
        ("not-json", "malformed", 400),
        ("compact", "malformed", 400),
        ("content-type", "malformed", 415),
    ],
)
async def test_bad_jws_gets_its_acme_error(api: Api, case: str, kind: str, status: int) -> None:
    body = problem(await _bad(api, case), kind, status)
    if kind == "badSignatureAlgorithm":
        assert body["algorithms"] == ["ES256", "ES384", "RS256", "EdDSA"]


async def test_a_nonce_is_spent_once(api: Api) -> None:
    key = jose.fresh("ES256")
    created = await new_account(api, key)
    assert created.status_code == 201
    kid, url = created.headers["location"], f"{BASE}/new-order"
    used = created.headers["replay-nonce"]
    header = {"kid": kid, "nonce": used, "url": url}
    order = {"identifiers": [{"type": "dns", "value": "a.web.internal"}]}
    first = await api.client.post(url, content=jose.jws(key, header, order), headers=JOSE)
    assert first.status_code == 201, first.text
    replay = await api.client.post(url, content=jose.jws(key, header, order), headers=JOSE)
    problem(replay, "badNonce", 400)


async def _order(api: Api, key: jose.Key, kid: str, names: list[str]) -> httpx.Response:
    url = f"{BASE}/new-order"
    header = {"kid": kid, "nonce": await nonce(api), "url": url}
    payload = {"identifiers": [{"type": "dns", "value": n} for n in names]}
    return await api.client.post(url, content=jose.jws(key, header, payload), headers=JOSE)


async def test_orders_only_names_the_service_may_have(api: Api) -> None:
    key = jose.fresh("EdDSA")
    kid = (await new_account(api, key)).headers["location"]
    ok = await _order(api, key, kid, ["a.web.internal"])
    assert ok.status_code == 201 and ok.json()["status"] == "pending"
    body = problem(await _order(api, key, kid, ["a.billing.internal"]), "rejectedIdentifier", 403)
    assert "a.billing.internal" in body["detail"]
    problem(await _order(api, key, kid, ["*.web.internal"]), "rejectedIdentifier", 400)
    url = f"{BASE}/new-order"
    header = {"kid": kid, "nonce": await nonce(api), "url": url}
    ip = {"identifiers": [{"type": "ip", "value": "10.0.0.1"}]}
    r = await api.client.post(url, content=jose.jws(key, header, ip), headers=JOSE)
    problem(r, "unsupportedIdentifier", 400)


async def test_unknown_kid_and_jwk_where_kid_belongs(api: Api) -> None:
    key, url = jose.fresh("ES256"), f"{BASE}/new-order"
    payload = {"identifiers": [{"type": "dns", "value": "a.web.internal"}]}
    header = {"kid": f"{BASE}/account/nobody", "nonce": await nonce(api), "url": url}
    r = await api.client.post(url, content=jose.jws(key, header, payload), headers=JOSE)
    problem(r, "accountDoesNotExist", 400)
    header = {"jwk": key.jwk(), "nonce": await nonce(api), "url": url}
    r = await api.client.post(url, content=jose.jws(key, header, payload), headers=JOSE)
    problem(r, "malformed", 400)


async def test_another_accounts_order_is_not_found(api: Api) -> None:
    alice, mallory = jose.fresh("ES256"), jose.fresh("ES256")
    alice_kid = (await new_account(api, alice)).headers["location"]
    mallory_kid = (await new_account(api, mallory)).headers["location"]
    order_url = (await _order(api, alice, alice_kid, ["a.web.internal"])).headers["location"]
    header = {"kid": mallory_kid, "nonce": await nonce(api), "url": order_url}
    r = await api.client.post(order_url, content=jose.jws(mallory, header, ""), headers=JOSE)
    problem(r, "malformed", 404)
    header = {"kid": alice_kid, "nonce": await nonce(api), "url": order_url}
    r = await api.client.post(order_url, content=jose.jws(alice, header, ""), headers=JOSE)
    assert r.status_code == 200 and r.json()["status"] == "pending"


async def test_finalize_before_ready_is_order_not_ready(api: Api) -> None:
    key = jose.fresh("ES256")
    kid = (await new_account(api, key)).headers["location"]
    finalize = (await _order(api, key, kid, ["a.web.internal"])).json()["finalize"]
    header = {"kid": kid, "nonce": await nonce(api), "url": finalize}
    r = await api.client.post(finalize, content=jose.jws(key, header, {"csr": "AA"}), headers=JOSE)
    problem(r, "orderNotReady", 403)


async def test_acme_and_the_api_refuse_a_name_the_same_way(api: Api) -> None:
    """One policy pipeline: the same refusal, word for word, over mTLS and over ACME."""
    with_csr = {"csr": make_csr("a.billing.internal", ["a.billing.internal"])}
    by_api = await api.client.post(
        "/api/v1/certificates/request", json=with_csr, headers=api.as_("web")
    )
    assert by_api.status_code == 403
    key = jose.fresh("ES256")
    kid = (await new_account(api, key)).headers["location"]
    by_acme = problem(await _order(api, key, kid, ["a.billing.internal"]), "rejectedIdentifier")
    assert by_acme["status"] == 403
    assert by_acme["detail"] == by_api.json()["detail"]


async def _post(api: Api, key: jose.Key, kid: str, url: str, payload: Any) -> httpx.Response:
    header = {"kid": kid, "nonce": await nonce(api), "url": url}
    return await api.client.post(url, content=jose.jws(key, header, payload), headers=JOSE)


async def test_orders_list_and_deactivation(api: Api) -> None:
    key = jose.fresh("ES256")
    kid = (await new_account(api, key)).headers["location"]
    first = (await _order(api, key, kid, ["a.web.internal"])).headers["location"]
    second = (await _order(api, key, kid, ["b.web.internal"])).headers["location"]
    account = await _post(api, key, kid, kid, "")
    assert account.status_code == 200
    listed = await _post(api, key, kid, account.json()["orders"], "")
    assert listed.status_code == 200 and sorted(listed.json()["orders"]) == sorted([first, second])
    gone = await _post(api, key, kid, kid, {"status": "deactivated"})
    assert gone.status_code == 200 and gone.json()["status"] == "deactivated"
    # RFC 8555 §7.3.6: a deactivated account's requests are refused
    problem(await _order(api, key, kid, ["a.web.internal"]), "unauthorized", 403)
    problem(await _post(api, key, kid, kid, {"status": "valid"}), "unauthorized", 403)


async def test_key_change_rolls_the_account_to_a_new_key(api: Api) -> None:
    old, new = jose.fresh("ES256"), jose.fresh("EdDSA")
    kid = (await new_account(api, old)).headers["location"]
    url = f"{BASE}/key-change"
    inner = jose.jws(new, {"jwk": new.jwk(), "url": url}, {"account": kid, "oldKey": old.jwk()})
    changed = await _post(api, old, kid, url, json.loads(inner))
    assert changed.status_code == 200, changed.text
    assert (await _order(api, new, kid, ["a.web.internal"])).status_code == 201
    # the old key no longer signs for the account (an ES256 key for an Ed25519 account)
    problem(await _order(api, old, kid, ["a.web.internal"]), "badSignatureAlgorithm", 400)
    # the new key finds the same account
    again = await new_account(api, new)
    assert again.status_code == 200 and again.headers["location"] == kid


@pytest.mark.parametrize("case", ["wrong-old-key", "other-account", "inner-nonce", "key-in-use"])
async def test_key_change_refusals(api: Api, case: str) -> None:
    old, new = jose.fresh("ES256"), jose.fresh("ES256")
    kid = (await new_account(api, old)).headers["location"]
    url = f"{BASE}/key-change"
    header: dict[str, Any] = {"jwk": new.jwk(), "url": url}
    payload: dict[str, Any] = {"account": kid, "oldKey": old.jwk()}
    kind = "malformed"
    if case == "wrong-old-key":
        payload["oldKey"] = new.jwk()
    elif case == "other-account":
        payload["account"] = f"{BASE}/account/someone-else"
    elif case == "inner-nonce":
        header["nonce"] = await nonce(api)
    else:
        await new_account(api, new)
        kind = "conflict"
    inner = jose.jws(new, header, payload)
    problem(await _post(api, old, kid, url, json.loads(inner)), kind)


async def _issued(api: Api, account_key: jose.Key, cert_key: jose.Key) -> tuple[str, bytes]:
    """An order finalized with a CSR of `cert_key`; its challenge is marked valid in the store
    (http-01 itself is proven by test_validation.py and test_lego.py)."""
    kid = (await new_account(api, account_key)).headers["location"]
    order = (await _order(api, account_key, kid, ["a.web.internal"])).json()
    repo = SqlAcmeRepository(api.pki.store)
    for url in order["authorizations"]:
        authz = repo.authorization(url.rsplit("/", 1)[1])
        assert authz is not None
        repo.finish_challenge(authz.challenges[0], Status.VALID, api.pki.ctx.clock.now(), None)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "a.web.internal")]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("a.web.internal")]), False)
        .sign(cert_key.private, hashes.SHA256())
    )
    body = {"csr": jose.b64(csr.public_bytes(Encoding.DER))}
    done = await _post(api, account_key, kid, order["finalize"], body)
    assert done.status_code == 200 and done.json()["status"] == "valid", done.text
    chain = await _post(api, account_key, kid, done.json()["certificate"], "")
    assert chain.headers["content-type"] == "application/pem-certificate-chain"
    leaf = x509.load_pem_x509_certificates(chain.content)[0]
    return kid, leaf.public_bytes(Encoding.DER)


async def test_revoke_by_the_certificates_own_key(api: Api) -> None:
    account_key, cert_key, stranger = jose.fresh("ES256"), jose.fresh("ES256"), jose.fresh("ES256")
    _, der = await _issued(api, account_key, cert_key)
    url = f"{BASE}/revoke-cert"

    async def revoke(signer: jose.Key) -> httpx.Response:
        header = {"jwk": signer.jwk(), "nonce": await nonce(api), "url": url}
        body = jose.jws(signer, header, {"certificate": jose.b64(der), "reason": 1})
        return await api.client.post(url, content=body, headers=JOSE)

    problem(await revoke(stranger), "unauthorized", 403)
    assert (await revoke(cert_key)).status_code == 200
    problem(await revoke(cert_key), "alreadyRevoked", 400)
    scraped = (await api.client.get("/metrics")).text
    assert 'pkiforge_acme_orders_total{state="pending"} 1.0' in scraped
    assert 'pkiforge_acme_orders_total{state="valid"} 1.0' in scraped


async def test_finalize_with_a_csr_for_other_names_is_bad_csr(api: Api) -> None:
    key = jose.fresh("ES256")
    kid = (await new_account(api, key)).headers["location"]
    order = (await _order(api, key, kid, ["a.web.internal"])).json()
    repo = SqlAcmeRepository(api.pki.store)
    authz = repo.authorization(order["authorizations"][0].rsplit("/", 1)[1])
    assert authz is not None
    repo.finish_challenge(authz.challenges[0], Status.VALID, api.pki.ctx.clock.now(), None)
    csr = x509.load_pem_x509_csr(make_csr("b.web.internal", ["b.web.internal"]).encode())
    body = {"csr": jose.b64(csr.public_bytes(Encoding.DER))}
    problem(await _post(api, key, kid, order["finalize"], body), "badCSR", 400)
