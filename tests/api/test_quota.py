"""max_certificates over the API: renewal replaces, so the active count never exceeds it.

At the quota the renewed certificate is revoked (superseded) as its successor is recorded;
below it the old certificate stays valid until it expires (step-ca and Vault renew the same
way), and a further renewal that reaches the quota supersedes.
"""

from __future__ import annotations

from typing import Any

from cryptography import x509

from .helpers import Api, make_csr

BILLING_QUOTA = 3  # tests/api/helpers.py WHITELIST


async def issue(api: Api, service: str, cn: str) -> str:
    r = await api.client.post(
        "/api/v1/certificates/request", headers=api.as_(service), json={"csr": make_csr(cn, [cn])}
    )
    assert r.status_code == 201, r.text
    return str(r.json()["serial"])


async def renew(api: Api, service: str, serial: str) -> dict[str, Any]:
    r = await api.client.post(f"/api/v1/certificates/{serial}/renew", headers=api.as_(service))
    assert r.status_code == 201, r.text
    assert r.json()["renewed_from"] == serial
    return dict(r.json())


async def active(api: Api, service: str) -> list[str]:
    """The service's active serials, as an admin lists them."""
    r = await api.client.get(
        "/api/v1/certificates",
        params={"service_id": service, "status": "active"},
        headers=api.as_("ops"),
    )
    assert r.status_code == 200, r.text
    return [c["serial"] for c in r.json()["items"]]


async def revocation(api: Api, serial: str) -> str | None:
    check = (await api.client.get(f"/api/v1/crl/check/{serial}")).json()
    return check["reason"] if check["revoked"] else None


async def test_renewal_below_the_quota_keeps_the_old_certificate(api: Api) -> None:
    old = await issue(api, "billing", "billing.internal")
    first = await renew(api, "billing", old)
    assert sorted(await active(api, "billing")) == sorted([old, first["serial"]])
    second = await renew(api, "billing", old)  # 2 of 3 held: still room for a third
    assert len(await active(api, "billing")) == BILLING_QUOTA
    assert await revocation(api, old) is None
    third = await renew(api, "billing", old)  # at the quota: this one replaces `old`
    assert sorted(await active(api, "billing")) == sorted(
        [first["serial"], second["serial"], third["serial"]]
    )
    assert await revocation(api, old) == "superseded"


async def test_renewal_at_the_quota_supersedes(api: Api) -> None:
    serials = [await issue(api, "billing", "billing.internal") for _ in range(BILLING_QUOTA)]
    renewed = await renew(api, "billing", serials[0])
    assert sorted(await active(api, "billing")) == sorted([renewed["serial"], *serials[1:]])
    assert await revocation(api, serials[0]) == "superseded"
    crl = x509.load_der_x509_crl(api.pki.revocation.generate_crl("services").der)
    entry = crl.get_revoked_certificate_by_serial_number(int(serials[0], 16))
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason.name == (
        "superseded"
    )
    # the superseded certificate cannot be renewed again; the count has no room for a request
    again = await api.client.post(
        f"/api/v1/certificates/{serials[0]}/renew", headers=api.as_("billing")
    )
    assert again.status_code == 409 and again.json()["field"] == "serial", again.text
    assert "revoked" in again.json()["detail"]
    more = await api.client.post(
        "/api/v1/certificates/request",
        headers=api.as_("billing"),
        json={"csr": make_csr("billing.internal", ["billing.internal"])},
    )
    assert more.status_code == 403 and more.json()["reason"] == "quota", more.text
    successor = await renew(api, "billing", renewed["serial"])
    assert sorted(await active(api, "billing")) == sorted([successor["serial"], *serials[1:]])


async def test_one_certificate_service_renews_in_place(api: Api) -> None:
    """max_certificates 1 (the test-* pattern): each renewal supersedes the one before."""
    serial = await issue(api, "test-a", "test-a.test.internal")
    chain = [serial]
    for _ in range(3):
        chain.append((await renew(api, "test-a", chain[-1]))["serial"])
        assert await active(api, "test-a") == [chain[-1]]
    assert [await revocation(api, s) for s in chain[:-1]] == ["superseded"] * 3
    with api.pki.store.transaction() as tx:
        entries = tx.audit.recent(3, action="cert.revoke")
    assert {e.details["superseded_by"] for e in entries} == set(chain[1:])
    assert {e.actor for e in entries} == {"service:test-a"}
