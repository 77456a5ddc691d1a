"""PUT/GET/DELETE /api/v1/services/{id}/webhook: only the service itself or an admin; the
secret once, in the answer that made it, never in a GET."""

from __future__ import annotations

from .helpers import Api

REG = "/api/v1/services/register"
HOOK = "/api/v1/services/billing/webhook"


async def test_a_service_sets_sees_and_removes_its_own_webhook(api: Api) -> None:
    c, me = api.client, api.as_("billing")
    r = await c.post(REG, headers=me, json={"service_id": "billing", "service_name": "B"})
    assert r.status_code == 201, r.text
    made = await c.put(HOOK, headers=me, json={"url": "https://billing.example/hooks"})
    assert made.status_code == 200, made.text
    secret = made.json()["secret"]
    assert secret.startswith("whsec_")
    assert made.json()["events"] == [
        "certificate.expiring",
        "certificate.renewed",
        "certificate.revoked",
    ]
    moved = await c.put(HOOK, headers=me, json={"url": "https://billing.example/v2"})
    assert moved.status_code == 200 and moved.json()["secret"] is None  # kept, not shown
    for caller in ("billing", "ops"):  # itself, an admin
        shown = await c.get(HOOK, headers=api.as_(caller))
        assert shown.status_code == 200, shown.text
        assert shown.json()["url"] == "https://billing.example/v2"
        assert "secret" not in shown.json() and secret not in shown.text
    rotated = await c.put(
        HOOK, headers=me, json={"url": moved.json()["url"], "rotate_secret": True}
    )
    assert rotated.json()["secret"] not in (None, secret)
    assert (await c.delete(HOOK, headers=me)).status_code == 204
    gone = await c.get(HOOK, headers=me)
    assert gone.status_code == 404 and "has no webhook" in gone.json()["detail"]


async def test_only_the_service_itself_or_an_admin_may_touch_its_webhook(api: Api) -> None:
    c = api.client
    await c.post(
        REG, headers=api.as_("billing"), json={"service_id": "billing", "service_name": "B"}
    )
    by_admin = await c.put(HOOK, headers=api.as_("ops"), json={"url": "https://b.example/h"})
    assert by_admin.status_code == 200, by_admin.text
    body = {"url": "https://attacker.example/h"}
    for caller, status in (("orders", 403), ("readonly", 403), ("stranger", 403), (None, 401)):
        headers = api.as_(caller)
        for answer in (
            await c.put(HOOK, headers=headers, json=body),
            await c.get(HOOK, headers=headers),
            await c.delete(HOOK, headers=headers),
        ):
            assert answer.status_code == status, (caller, answer.text)
            assert "whsec_" not in answer.text
    shown = await c.get(HOOK, headers=api.as_("billing"))
    assert shown.json()["url"] == "https://b.example/h"  # nobody else changed it


async def test_a_bad_webhook_url_is_a_clear_400_and_changes_nothing(api: Api) -> None:
    c, me = api.client, api.as_("billing")
    await c.post(REG, headers=me, json={"service_id": "billing", "service_name": "B"})
    for url, says in (
        ("http://billing.example/h", "must use https"),
        ("http://127.0.0.1:8080/h", "must use https"),  # loopback http is off by default
        ("https://u:hunter2@billing.example/", "user name or password"),
        ("not a url", "https:// URL with a host"),
    ):
        r = await c.put(HOOK, headers=me, json={"url": url})
        assert r.status_code == 400, (url, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert says in r.json()["detail"] and "hunter2" not in r.text
    assert (await c.get(HOOK, headers=me)).status_code == 404
    r = await c.put(HOOK, headers=me, json={"url": "https://b.example/h", "extra": 1})
    assert r.status_code in (400, 422)
    r = await c.put(
        "/api/v1/services/nobody/webhook",
        headers=api.as_("ops"),
        json={"url": "https://x.example/"},
    )
    assert r.status_code == 404 and "no service 'nobody'" in r.json()["detail"]
