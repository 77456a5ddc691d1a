"""Certificates over the API in-process (fake identity): ownership, names, quota, limits."""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any

import httpx
import pytest
from cryptography import x509

from pkiforge.ca.enrollment import EnrollmentService
from pkiforge.ca.registry_models import ServiceRecord
from tests.ca.helpers import NOW, snapshot

from .helpers import Api, make_api, make_csr

REQ = "/api/v1/certificates/request"


async def register(api: Api, service: str, names: list[str], **extra: Any) -> httpx.Response:
    body = {"service_id": service, "service_name": service.title(), "names": names, **extra}
    return await api.client.post("/api/v1/services/register", headers=api.as_(service), json=body)


async def request(api: Api, service: str | None, **body: Any) -> httpx.Response:
    return await api.client.post(REQ, headers=api.as_(service), json=body)


async def issue(api: Api, service: str = "billing", cn: str = "billing.internal") -> dict[str, Any]:
    r = await request(api, service, csr=make_csr(cn, [cn]))
    assert r.status_code == 201, r.text
    return dict(r.json())


async def test_request_renew_revoke_own_certificate(api: Api) -> None:
    assert (await register(api, "billing", ["billing.internal"])).status_code == 201
    cert = await issue(api)
    assert cert["service_id"] == "billing" and cert["status"] == "active"
    assert cert["certificate_id"] == cert["serial"]
    assert "URI:spiffe://example.internal/billing" in cert["names"]
    assert cert["private_key_pem"] is None
    assert cert["download_url"] == f"/api/v1/certificates/{cert['serial']}/download"
    leaf = x509.load_pem_x509_certificate(cert["certificate_pem"].encode())
    chain = x509.load_pem_x509_certificates(cert["chain_pem"].encode())
    assert [c.subject for c in chain][-1] == chain[-1].issuer  # ends with the root
    leaf.verify_directly_issued_by(chain[0])
    # max_validity 200d in the whitelist caps the profile default of 365d
    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert lifetime <= dt.timedelta(days=200, minutes=1)

    renewed = await api.client.post(
        f"/api/v1/certificates/{cert['serial']}/renew", headers=api.as_("billing")
    )
    assert renewed.status_code == 201, renewed.text
    assert renewed.json()["renewed_from"] == cert["serial"]

    revoked = await api.client.post(
        f"/api/v1/certificates/{cert['serial']}/revoke",
        headers=api.as_("billing"),
        json={"reason": "superseded"},
    )
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["status"] == "revoked"
    assert revoked.json()["revocation"]["reason"] == "superseded"
    again = await api.client.request(
        "DELETE", f"/api/v1/certificates/{cert['serial']}/revoke", headers=api.as_("billing")
    )
    assert again.status_code == 409

    audit = api.pki.ctx.store
    with audit.transaction() as tx:
        actions = [(e.action, e.actor, e.address) for e in tx.audit.recent(10)]
    assert ("cert.revoke", "service:billing", "10.9.8.7") in actions
    assert ("cert.renew", "service:billing", "10.9.8.7") in actions
    assert ("service.register", "service:billing", "10.9.8.7") in actions


async def test_another_services_name_is_refused_naming_it(api: Api) -> None:
    await register(api, "billing", ["billing.internal"])
    r = await request(api, "orders", csr=make_csr("billing.internal", ["billing.internal"]))
    assert r.status_code == 403
    assert r.headers["content-type"] == "application/problem+json"
    assert "DNS:billing.internal" in r.json()["detail"] and "billing" in r.json()["detail"]
    # a name nobody registered is refused too, and named
    r = await request(api, "orders", csr=make_csr("nobody.internal", ["nobody.internal"]))
    assert r.status_code == 403 and "DNS:nobody.internal" in r.json()["detail"]


async def test_names_owned_through_the_index_are_refused_among_many_services(api: Api) -> None:
    # the ownership check reads only the registered names filed under the requested names'
    # keys (ca/name_index.py); with many services registered it still finds each kind of owner
    with api.pki.ctx.store.transaction() as tx:
        for i in range(60):
            tx.services.add(
                ServiceRecord(f"svc-{i}", f"svc-{i}", NOW, NOW, names=(f"DNS:s{i}.internal",))
            )
    wild = ["billing.internal", "*.billing.internal"]
    assert (await register(api, "billing", wild)).status_code == 201
    names = ["orders.internal", "IP:10.0.0.7", "URI:spiffe://x/orders"]
    assert (await register(api, "orders", names)).status_code == 201
    for caller, cn, extra, owner in [
        ("orders", "orders.internal", {"san_dns": ["shop.billing.internal"]}, "'billing'"),
        ("billing", "billing.internal", {"san_ip": ["10.0.0.7"]}, "'orders'"),
        ("billing", "billing.internal", {"san_uri": ["spiffe://x/orders"]}, "'orders'"),
        ("billing", "billing.internal", {"san_dns": ["s42.internal"]}, "'svc-42'"),
    ]:
        r = await request(api, caller, csr=make_csr(cn), **extra)
        assert r.status_code == 403, (extra, r.text)
        (name,) = next(iter(extra.values()))
        detail = r.json()["detail"]
        assert r.json()["reason"] == "name-owned", r.text
        assert name in detail and f"registered to service {owner}" in detail, r.text
    # a name given up is free at once: no longer another's, only not registered to the caller
    r = await api.client.put(
        "/api/v1/services/billing", headers=api.as_("billing"), json={"names": ["billing.internal"]}
    )
    assert r.status_code == 200, r.text
    csr = make_csr("orders.internal")
    r = await request(api, "orders", csr=csr, san_dns=["a.billing.internal"])
    assert r.status_code == 403 and r.json()["reason"] == "name-not-allowed", r.text


async def test_whitelist_patterns_and_placeholders(api: Api) -> None:
    # test-* may hold `{service_id}.test.internal` without registering, one certificate at most
    assert (await issue(api, "test-a", "test-a.test.internal"))["service_id"] == "test-a"
    r = await request(api, "test-a", csr=make_csr("test-a.test.internal", ["test-a.test.internal"]))
    assert r.status_code == 403 and r.json()["reason"] == "quota"
    r = await request(api, "test-b", csr=make_csr("test-a.test.internal", ["test-a.test.internal"]))
    assert r.status_code == 403 and "test-a.test.internal" in r.json()["detail"]


@pytest.mark.parametrize(
    ("service", "status", "reason"),
    [(None, 401, "no-cert"), ("stranger", 403, "whitelist"), ("readonly", 403, "operation")],
    ids=["no-identity", "not-whitelisted", "no-request-right"],
)
async def test_unauthorised_callers(
    api: Api, service: str | None, status: int, reason: str
) -> None:
    r = await request(api, service, csr=make_csr("billing.internal"))
    assert r.status_code == status
    assert r.json()["reason"] == reason


async def test_only_own_certificates_unless_admin(api: Api) -> None:
    await register(api, "billing", ["billing.internal"])
    serial = (await issue(api))["serial"]
    for method, path in [
        ("GET", f"/api/v1/certificates/{serial}"),
        ("POST", f"/api/v1/certificates/{serial}/renew"),
        ("POST", f"/api/v1/certificates/{serial}/revoke"),
        ("GET", "/api/v1/certificates?service_id=billing"),
    ]:
        r = await api.client.request(method, path, headers=api.as_("orders"))
        assert r.status_code == 403, (method, path, r.text)
    listed = await api.client.get("/api/v1/certificates?service_id=billing", headers=api.as_("ops"))
    assert listed.json()["total"] == 1
    r = await api.client.post(f"/api/v1/certificates/{serial}/revoke", headers=api.as_("ops"))
    assert r.status_code == 200


async def test_server_made_key_only_where_allowed(api: Api) -> None:
    await register(api, "orders", ["orders.internal"])
    r = await request(api, "orders", common_name="orders.internal", key_type="p256")
    assert r.status_code == 201, r.text
    assert r.json()["private_key_pem"].startswith("-----BEGIN PRIVATE KEY-----")
    shown = await api.client.get(
        f"/api/v1/certificates/{r.json()['serial']}", headers=api.as_("orders")
    )
    assert shown.json()["private_key_pem"] is None  # only in the response that made it
    await register(api, "billing", ["billing.internal"])
    r = await request(api, "billing", common_name="billing.internal", key_type="p256")
    assert r.status_code == 403 and r.json()["field"] == "key_type"


async def test_download_formats(api: Api) -> None:
    await register(api, "billing", ["billing.internal"])
    serial = (await issue(api))["serial"]
    base = f"/api/v1/certificates/{serial}/download"
    pem = await api.client.get(base, headers=api.as_("billing"))
    der = await api.client.get(f"{base}?format=der", headers=api.as_("billing"))
    chain = await api.client.get(f"{base}?format=chain", headers=api.as_("billing"))
    assert pem.headers["content-type"] == "application/x-pem-file"
    assert der.headers["content-type"] == "application/pkix-cert"
    assert chain.headers["content-type"] == "application/pem-certificate-chain"
    leaf = x509.load_der_x509_certificate(der.content)
    assert x509.load_pem_x509_certificate(pem.content) == leaf
    certs = x509.load_pem_x509_certificates(chain.content)
    assert certs[0] == leaf and len(certs) == 2  # leaf + intermediate, no root


async def test_list_filters_and_pagination(api: Api) -> None:
    await register(api, "billing", ["billing.internal", "*.billing.internal"])
    serials = [(await issue(api, cn=f"s{i}.billing.internal"))["serial"] for i in range(3)]
    await api.client.post(f"/api/v1/certificates/{serials[0]}/revoke", headers=api.as_("billing"))
    get = api.client.get
    page = (await get("/api/v1/certificates?limit=2", headers=api.as_("billing"))).json()
    assert page["total"] == 3 and len(page["items"]) == 2 and page["limit"] == 2
    assert page["total_exact"] is True and page["next_cursor"]
    revoked = (await get("/api/v1/certificates?status=revoked", headers=api.as_("billing"))).json()
    assert [c["serial"] for c in revoked["items"]] == [serials[0]]
    soon = (
        await get(
            "/api/v1/certificates",
            params={"expiring_before": "2026-03-02T00:00:00Z"},
            headers=api.as_("billing"),
        )
    ).json()
    assert soon["total"] == 0


async def test_list_pages_follow_the_cursor_and_the_link_header(api: Api) -> None:
    await register(api, "billing", ["billing.internal", "*.billing.internal"])
    await register(api, "orders", ["orders.internal"])
    serials = {(await issue(api, cn=f"s{i}.billing.internal"))["serial"] for i in range(3)}
    await issue(api, "orders", "orders.internal")
    seen: list[str] = []
    url: str | None = "/api/v1/certificates?limit=1&service_id=billing"
    while url is not None:
        r = await api.client.get(url, headers=api.as_("billing"))
        assert r.status_code == 200, r.text
        body = r.json()
        seen += [c["serial"] for c in body["items"]]
        link = r.headers.get("link")
        if body["next_cursor"] is None:
            assert link is None
            url = None
        else:  # RFC 8288: the next page's URL, same filters, this cursor
            assert link is not None and link.endswith('>; rel="next"'), link
            url = link[1 : link.index(">")]
            assert f"cursor={body['next_cursor']}" in url and "service_id=billing" in url
    assert sorted(seen) == sorted(serials) and len(seen) == 3

    # a cursor says where to start, not what to show: another service's rows stay hidden
    everything = await api.client.get("/api/v1/certificates?limit=1", headers=api.as_("ops"))
    cursor = everything.json()["next_cursor"]
    mine = await api.client.get(
        "/api/v1/certificates", params={"cursor": cursor}, headers=api.as_("billing")
    )
    assert mine.status_code == 200
    assert {c["service_id"] for c in mine.json()["items"]} <= {"billing"}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


BAD_CURSORS = [
    ("garbage", "not-a-cursor!", "not one this server made"),
    ("not-json", _b64(b"hello"), "not one this server made"),
    ("extra-field", _b64(b'{"o":"n","t":"2026-03-01T00:00:00+00:00","s":"1f","x":1}'), "made"),
    ("bad-serial", _b64(b'{"o":"n","t":"2026-03-01T00:00:00+00:00","s":"-1f"}'), "made"),
    ("leading-zero", _b64(b'{"o":"n","t":"2026-03-01T00:00:00+00:00","s":"01f"}'), "made"),
    ("no-zone", _b64(b'{"o":"n","t":"2026-03-01T00:00:00","s":"1f"}'), "made"),
    ("unknown-order", _b64(b'{"o":"z","t":"2026-03-01T00:00:00+00:00","s":"1f"}'), "made"),
    ("other-order", _b64(b'{"o":"e","t":"2026-03-01T00:00:00+00:00","s":"1f"}'), "other filters"),
]


@pytest.mark.parametrize(
    ("cursor", "says"), [c[1:] for c in BAD_CURSORS], ids=[c[0] for c in BAD_CURSORS]
)
async def test_a_bad_cursor_is_refused_naming_it(api: Api, cursor: str, says: str) -> None:
    r = await api.client.get(
        "/api/v1/certificates", params={"cursor": cursor}, headers=api.as_("ops")
    )
    assert r.status_code == 400, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["field"] == "cursor" and says in r.json()["detail"]


async def test_offset_paging_is_retired(api: Api) -> None:
    r = await api.client.get("/api/v1/certificates?offset=100", headers=api.as_("ops"))
    assert r.status_code == 422 and "offset" in r.text


async def test_rate_limit_answers_429_with_retry_after(tmp_path: Any) -> None:
    limited = make_api(tmp_path / "home", limit=2)
    try:
        await register(limited, "billing", ["billing.internal", "*.billing.internal"])
        codes = []
        for i in range(3):
            cn = f"r{i}.billing.internal"
            codes.append((await request(limited, "billing", csr=make_csr(cn, [cn]))).status_code)
        assert codes == [201, 201, 429]
        r = await request(limited, "billing", csr=make_csr("x.billing.internal"))
        assert int(r.headers["retry-after"]) >= 1
        assert r.headers["content-type"] == "application/problem+json"
    finally:
        await limited.client.aclose()
        limited.pki.close()


async def test_enrollment_token_works_once_and_only_for_its_service(api: Api) -> None:
    await register(api, "billing", ["billing.internal"], **{})
    tokens = EnrollmentService(api.pki.ctx)
    _, text = tokens.create("billing", dt.timedelta(hours=1))
    auth = {"Authorization": f"Bearer {text}"}
    csr = make_csr("billing.internal", ["billing.internal"])
    wrong = await api.client.post(REQ, headers=auth, json={"csr": csr, "service_id": "orders"})
    assert wrong.status_code == 403  # refused requests do not spend the token
    first = await api.client.post(REQ, headers=auth, json={"csr": csr})
    assert first.status_code == 201, first.text
    second = await api.client.post(REQ, headers=auth, json={"csr": csr})
    assert second.status_code == 401 and second.json()["reason"] == "token-used"
    (listed,) = tokens.list("billing")
    assert (
        listed.certificate_serial == first.json()["serial"]
        and listed.state(api.pki.ctx.clock.now()) == "used"
    )
    with api.pki.ctx.store.transaction() as tx:
        entry = tx.audit.recent(1, action="cert.issue")[0]
    assert entry.actor == f"token:{listed.token_id}"
    bad = await api.client.post(REQ, headers={"Authorization": "Bearer pkf_nope"}, json={})
    assert bad.status_code == 401


async def test_a_malformed_bearer_token_is_refused_as_such(api: Api) -> None:
    """Not as a missing client certificate: the caller meant to present a token."""
    csr = make_csr("billing.internal", ["billing.internal"])
    for value in ("Bearer garbage", "bearer pkf_short", "Bearer "):
        r = await api.client.post(REQ, headers={"Authorization": value}, json={"csr": csr})
        assert r.status_code == 401, (value, r.text)
        problem = r.json()
        assert problem["reason"] == "bad-token", (value, problem)
        assert "malformed enrollment token" in problem["detail"]
        assert "client certificate" not in problem["detail"]


async def test_metrics_count_lifecycle_and_expiry(api: Api) -> None:
    await register(api, "billing", ["billing.internal"])
    serial = (await issue(api))["serial"]
    await api.client.post(f"/api/v1/certificates/{serial}/renew", headers=api.as_("billing"))
    await api.client.post(f"/api/v1/certificates/{serial}/revoke", headers=api.as_("billing"))
    await request(api, "billing", csr=make_csr("billing.internal"), issuer="nope")
    text = (await api.client.get("/metrics")).text
    labels = '{issuer="services",profile="service"}'
    assert f"pkiforge_certificates_issued_total{labels} 1.0" in text
    assert f"pkiforge_certificates_renewed_total{labels} 1.0" in text
    assert f"pkiforge_certificates_revoked_total{labels} 1.0" in text
    assert 'pkiforge_certificates_failed_total{issuer="nope",profile="service"} 1.0' in text
    assert 'pkiforge_certificates_expiring{within="30d"} 0.0' in text
    assert 'route="/api/v1/certificates/{serial}/renew"' in text


METADATA = {"team": "payments", "cost_center": 4711, "tags": ["pci"], "on_call": {"tz": "UTC"}}


async def test_metadata_is_stored_returned_and_kept_on_renewal(api: Api) -> None:
    await register(api, "billing", ["billing.internal"])
    csr = make_csr("billing.internal", ["billing.internal"])
    r = await request(api, "billing", csr=csr, metadata=METADATA)
    assert r.status_code == 201, r.text
    serial = r.json()["serial"]
    assert r.json()["metadata"] == METADATA
    shown = await api.client.get(f"/api/v1/certificates/{serial}", headers=api.as_("billing"))
    assert shown.status_code == 200 and shown.json()["metadata"] == METADATA

    renewed = await api.client.post(
        f"/api/v1/certificates/{serial}/renew", headers=api.as_("billing")
    )
    assert renewed.status_code == 201, renewed.text
    assert renewed.json()["renewed_from"] == serial
    assert renewed.json()["metadata"] == METADATA
    successor = await api.client.get(renewed.headers["location"], headers=api.as_("billing"))
    assert successor.json()["metadata"] == METADATA

    plain = await issue(api)  # none sent: an empty object, and none in the audit entry
    assert plain["metadata"] == {}
    listed = await api.client.get(
        "/api/v1/certificates?service_id=billing", headers=api.as_("billing")
    )
    by_serial = {c["serial"]: c["metadata"] for c in listed.json()["items"]}
    assert by_serial[serial] == METADATA and by_serial[plain["serial"]] == {}
    with api.pki.ctx.store.transaction(readonly=True) as tx:
        issued = {e.subject: e.details for e in tx.audit.recent(10, action="cert.issue")}
    assert issued[serial]["metadata"] == METADATA
    assert "metadata" not in issued[plain["serial"]]


async def test_metadata_with_a_server_made_key(api: Api) -> None:
    await register(api, "orders", ["orders.internal"])
    r = await request(
        api, "orders", common_name="orders.internal", key_type="p256", metadata={"env": "prod"}
    )
    assert r.status_code == 201, r.text
    assert r.json()["metadata"] == {"env": "prod"}
    assert api.pki.certificates.get(int(r.json()["serial"], 16)).metadata == {"env": "prod"}


def _deep(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": True}
    for _ in range(levels - 1):
        value = {"n": value}
    return value


@pytest.mark.parametrize(
    ("metadata", "words"),
    [
        ({"blob": "x" * 4096}, "bytes"),
        ({"blob": "é" * 2045}, "bytes"),  # 4098 bytes of UTF-8, 2053 characters
        (_deep(5), "deeper than 4"),
        ({"list": [[[["too deep"]]]]}, "deeper than 4"),
        ({"n": float("inf")}, "plain JSON"),
        ("not an object", "dictionary"),
    ],
    ids=["oversize", "oversize-utf8", "five-objects", "arrays", "infinity", "string"],
)
async def test_bad_metadata_is_refused_naming_it_and_stores_nothing(
    api: Api, metadata: Any, words: str
) -> None:
    await register(api, "billing", ["billing.internal"])
    before = snapshot(api.pki)
    csr = make_csr("billing.internal", ["billing.internal"])
    body = json.dumps({"csr": csr, "metadata": metadata})  # allows Infinity, as clients may
    r = await api.client.post(
        REQ, headers={**api.as_("billing"), "content-type": "application/json"}, content=body
    )
    assert r.status_code in (400, 422), r.text
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    fields = [e["field"] for e in problem.get("errors", [])] or [problem.get("field")]
    assert fields == ["metadata"], problem
    assert words in problem["detail"], problem
    assert snapshot(api.pki) == before
    # the limit is the boundary: 4 levels are fine
    r = await request(api, "billing", csr=csr, metadata=_deep(4))
    assert r.status_code == 201, r.text
    assert r.json()["metadata"] == _deep(4)


async def test_metadata_limits_are_in_the_openapi_description(api: Api) -> None:
    spec = (await api.client.get("/openapi.json")).json()
    described = spec["components"]["schemas"]["CertificateRequest"]["properties"]["metadata"]
    assert "4096 bytes" in described["description"]
    assert "4 levels" in described["description"]


async def test_renewals_keep_the_lifetime_under_a_service_max_validity(api: Api) -> None:
    """billing has max_validity 200d: each renewal keeps the first certificate's lifetime,
    not that lifetime plus another backdate."""
    r = await request(api, "billing", csr=make_csr("billing.internal"), validity_days=30)
    assert r.status_code == 201, r.text
    certs = [r.json()]
    for _ in range(2):
        r = await api.client.post(
            f"/api/v1/certificates/{certs[-1]['serial']}/renew", headers=api.as_("billing")
        )
        assert r.status_code == 201, r.text
        certs.append(r.json())
    lifetimes = {
        dt.datetime.fromisoformat(c["not_after"]) - dt.datetime.fromisoformat(c["not_before"])
        for c in certs
    }
    assert lifetimes == {dt.timedelta(days=30, minutes=1)}
