"""Service registry and discovery in-process: who may register what, updates, discovery."""

from __future__ import annotations

from .helpers import Api, make_csr

REG = "/api/v1/services/register"


async def test_register_update_and_discover(api: Api) -> None:
    c, me = api.client, api.as_("billing")
    body = {
        "service_id": "billing",
        "service_name": "Billing API",
        "service_type": "backend",
        "endpoints": ["https://billing.internal:8443"],
        "names": ["billing.internal", "*.billing.internal"],
        "health_check_url": "https://billing.internal:8443/healthz",
        "owner": {"team": "payments"},
    }
    created = await c.post(REG, headers=me, json=body)
    assert created.status_code == 201, created.text
    assert created.json()["names"] == ["DNS:billing.internal", "DNS:*.billing.internal"]
    assert (await c.post(REG, headers=me, json=body)).status_code == 409
    r = await c.post(
        "/api/v1/certificates/request",
        headers=me,
        json={"csr": make_csr("billing.internal", ["billing.internal"])},
    )
    assert r.status_code == 201

    updated = await c.put(
        "/api/v1/services/billing", headers=me, json={"auto_renew": False, "service_type": "api"}
    )
    assert updated.status_code == 200
    assert updated.json()["auto_renew"] is False and updated.json()["owner"] == {"team": "payments"}
    assert updated.json()["certificate_serial"] == r.json()["serial"]

    found = await c.get("/api/v1/discovery/services?type=api", headers=me)
    assert [s["service_id"] for s in found.json()] == ["billing"]
    assert (await c.get("/api/v1/discovery/services?type=backend", headers=me)).json() == []
    peer = await c.get("/api/v1/discovery/services/billing/cert", headers=api.as_("orders"))
    assert peer.status_code == 200
    assert peer.json()["spiffe_id"] == "spiffe://example.internal/billing"
    assert peer.json()["endpoints"] == ["https://billing.internal:8443"]
    assert peer.json()["serial"] == r.json()["serial"]


async def test_who_may_register_and_claim_names(api: Api) -> None:
    c = api.client
    await c.post(
        REG,
        headers=api.as_("billing"),
        json={"service_id": "billing", "service_name": "B", "names": ["billing.internal"]},
    )
    cases = [
        # caller, body, status, reason or text in detail
        ("orders", {"service_id": "billing2", "service_name": "x"}, 403, "not-owner"),
        (
            "orders",
            {"service_id": "orders", "service_name": "x", "names": ["billing.internal"]},
            409,
            "billing",
        ),
        (
            "orders",
            {"service_id": "orders", "service_name": "x", "names": ["*.orders.internal"]},
            403,
            "name-not-allowed",
        ),
        ("billing", {"service_id": "billing", "service_name": "x"}, 409, "already registered"),
        ("readonly", {"service_id": "readonly", "service_name": "x"}, 403, "operation"),
        ("stranger", {"service_id": "stranger", "service_name": "x"}, 403, "whitelist"),
        (
            "ops",
            {"service_id": "anyone", "service_name": "x", "names": ["*.any.internal"]},
            201,
            "",
        ),
    ]
    for caller, body, status, why in cases:
        r = await c.post(REG, headers=api.as_(caller), json=body)
        assert r.status_code == status, (caller, body, r.text)
        if why:
            assert why in (r.json().get("reason") or "") + r.json()["detail"], r.text
    # reading: own record always, others need `list`; discovery needs `discover`
    assert (await c.get("/api/v1/services/billing", headers=api.as_("orders"))).status_code == 403
    assert (await c.get("/api/v1/services", headers=api.as_("billing"))).status_code == 200
    r = await c.get("/api/v1/discovery/services", headers=api.as_("readonly"))
    assert r.status_code == 403
    r = await c.get("/api/v1/discovery/services/billing/cert", headers=api.as_("orders"))
    assert r.status_code == 404 and r.json()["field"] == "service_id"  # no certificate yet
