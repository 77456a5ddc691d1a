"""CA revocation over the API in-process (fake identity): only admins, never the root, never
through the leaf routes; afterwards the CA issues nothing."""

from __future__ import annotations

import httpx
import pytest
from cryptography import x509

from pkiforge.ca.models import CAStatus, CertStatus

from .helpers import Api, make_csr

PROBLEM = "application/problem+json"


def ca_serial(api: Api, name: str) -> str:
    cert = api.pki.hierarchy.get(name).certificate
    assert cert is not None
    return format(cert.serial_number, "x")


def assert_problem(r: httpx.Response, status: int, *phrases: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM
    for phrase in phrases:
        assert phrase in r.json()["detail"], r.json()


@pytest.fixture
def agents(api: Api) -> Api:
    api.pki.hierarchy.create_intermediate("agents")
    return api


@pytest.mark.parametrize("method", ["POST", "DELETE"])
@pytest.mark.parametrize("name", ["root", "services"])
async def test_leaf_revoke_route_refuses_a_ca_certificate(api: Api, method: str, name: str) -> None:
    serial = ca_serial(api, name)
    r = await api.client.request(
        method,
        f"/api/v1/certificates/{serial}/revoke",
        headers=api.as_("ops"),
        json={"reason": "cACompromise"},
    )
    assert_problem(r, 409, "pkiforge ca revoke")
    assert api.pki.certificates.get(int(serial, 16)).status is CertStatus.ACTIVE
    assert api.pki.hierarchy.get(name).status is CAStatus.ACTIVE


async def test_leaf_renew_route_refuses_a_ca_certificate(api: Api) -> None:
    serial = ca_serial(api, "services")
    r = await api.client.post(f"/api/v1/certificates/{serial}/renew", headers=api.as_("ops"))
    assert_problem(r, 409, "does not renew CA certificates")


@pytest.mark.parametrize(
    ("service", "status"),
    [(None, 401), ("billing", 403), ("readonly", 403), ("nobody", 403)],
    ids=["no-certificate", "service", "download-only", "not-whitelisted"],
)
async def test_only_an_admin_revokes_a_ca(agents: Api, service: str | None, status: int) -> None:
    r = await agents.client.post(
        "/api/v1/ca/agents/revoke", headers=agents.as_(service), json={"reason": "cACompromise"}
    )
    assert_problem(r, status)
    assert agents.pki.hierarchy.get("agents").status is CAStatus.ACTIVE


async def test_admin_revokes_a_ca_and_it_issues_nothing_more(agents: Api) -> None:
    serial = ca_serial(agents, "agents")
    r = await agents.client.post(
        "/api/v1/ca/agents/revoke",
        headers=agents.as_("ops"),
        json={"reason": "cACompromise", "invalidity_date": "2026-02-28T00:00:00Z"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ca"]["status"] == "revoked" and body["serial"] == serial
    assert body["reason"] == "cACompromise" and body["default_issuer"] is False
    assert body["root_crl_number"] >= 1 and body["root_crl_pending"] is None

    info = await agents.client.get("/api/v1/ca/agents/info")
    assert info.json()["status"] == "revoked"
    crl = x509.load_der_x509_crl((await agents.client.get("/api/v1/crl/root")).content)
    assert crl.get_revoked_certificate_by_serial_number(int(serial, 16)) is not None
    assert crl.get_revoked_certificate_by_serial_number(int(ca_serial(agents, "root"), 16)) is None

    with agents.pki.store.transaction(readonly=True) as tx:
        (entry,) = tx.audit.recent(1, action="ca.revoke")
    assert (entry.subject, entry.actor, entry.address) == ("agents", "service:ops", "10.9.8.7")

    cn = "x.billing.internal"
    refused = await agents.client.post(
        "/api/v1/certificates/request",
        headers=agents.as_("ops"),
        json={"csr": make_csr(cn, [cn]), "service_id": "billing", "issuer": "agents"},
    )
    assert_problem(refused, 409, "CA 'agents' is revoked")

    again = await agents.client.post("/api/v1/ca/agents/revoke", headers=agents.as_("ops"))
    assert_problem(again, 409, "already revoked")


async def test_revoking_the_default_issuer_says_so(api: Api) -> None:
    r = await api.client.post("/api/v1/ca/services/revoke", headers=api.as_("ops"))
    assert r.status_code == 200, r.text
    assert r.json()["default_issuer"] is True and r.json()["reason"] == "unspecified"
    cn = "billing.internal"
    refused = await api.client.post(
        "/api/v1/certificates/request",
        headers=api.as_("ops"),
        json={"csr": make_csr(cn, [cn]), "service_id": "billing"},
    )
    assert_problem(refused, 409, "CA 'services' is revoked", "default issuer")


@pytest.mark.parametrize(
    ("path", "body", "status", "phrase"),
    [
        ("/api/v1/ca/root/revoke", {}, 409, "the root is never revoked; retire/replace it"),
        ("/api/v1/ca/nope/revoke", {}, 404, "no CA named 'nope'"),
        ("/api/v1/ca/agents/revoke", {"reason": "certificateHold"}, 400, "final"),
        ("/api/v1/ca/agents/revoke", {"reason": "x", "extra": 1}, 422, ""),
        ("/api/v1/ca/agents/revoke", {"invalidity_date": "2999-01-01T00:00:00Z"}, 400, "future"),
        ("/api/v1/ca/agents/revoke", {"invalidity_date": "0001-01-01T00:00+14:00"}, 400, "range"),
    ],
    ids=["root", "unknown", "hold", "extra-field", "future", "out-of-range"],
)
async def test_refused_ca_revocations_change_nothing(
    agents: Api, path: str, body: dict[str, object], status: int, phrase: str
) -> None:
    r = await agents.client.post(path, headers=agents.as_("ops"), json=body)
    assert_problem(r, status, phrase)
    assert {ca.name: ca.status for ca in agents.pki.hierarchy.all()} == {
        "root": CAStatus.ACTIVE,
        "services": CAStatus.ACTIVE,
        "agents": CAStatus.ACTIVE,
    }
