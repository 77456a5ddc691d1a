"""Readiness and the free-space reserve in-process: what /readyz says, which routes the reserve
guards, and the gauges. The real full disk is in test_disk_full.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import event

from pkiforge.api.app import ROUTERS
from pkiforge.api.storage import NEW_WRITES
from pkiforge.errors import StoreUnavailable
from pkiforge.settings import StorageSettings
from pkiforge.store.durable import WalSync

from .helpers import Api, make_api, make_csr

NAMES = ["billing.internal"]
EVERYTHING = 2**62  # more free bytes than any disk has: always below this reserve
# routes with an unsafe method that may go on below the reserve: revocations make the PKI
# safer and write little, and OCSP over POST (RFC 6960 §A.1.1) is a read
EXEMPT = {
    ("POST", "/api/v1/ca/{name}/revoke"),
    ("POST", "/api/v1/certificates/{serial}/revoke"),
    ("DELETE", "/api/v1/certificates/{serial}/revoke"),
    ("POST", "/api/v1/keys/{key_id}/revoke"),
    ("DELETE", "/api/v1/keys/{key_id}"),
    ("POST", "/api/v1/ocsp"),
}


@pytest.fixture
async def starved(tmp_path: Path) -> AsyncIterator[Api]:
    """An app whose reserve is more than the disk holds."""
    made = make_api(tmp_path / "home", storage=StorageSettings(min_free_bytes=EVERYTHING))
    yield made
    await made.client.aclose()
    made.pki.close()


async def _issue(api: Api) -> str:
    registered = await api.client.post(
        "/api/v1/services/register",
        headers=api.as_("billing"),
        json={"service_id": "billing", "service_name": "Billing", "names": NAMES},
    )
    assert registered.status_code in (201, 409)
    issued = await api.client.post(
        "/api/v1/certificates/request",
        headers=api.as_("billing"),
        json={"csr": make_csr(NAMES[0], NAMES)},
    )
    assert issued.status_code == 201, issued.text
    return str(issued.json()["serial"])


async def test_ready_names_each_check(api: Api) -> None:
    answer = await api.client.get("/readyz")
    assert answer.status_code == 200
    assert answer.json() == {
        "status": "ready",
        "checks": {"database": "ok", "write": "ok", "storage": "ok"},
    }


async def test_a_database_that_refuses_writes_is_not_ready(api: Api) -> None:
    # from here on the database is read-only (as on a filesystem remounted read-only after
    # errors): every write fails with SQLITE_READONLY, already at BEGIN IMMEDIATE; reads work
    @event.listens_for(api.pki.store.engine, "begin")
    def _read_only(conn: Any) -> None:
        conn.connection.driver_connection.execute("PRAGMA query_only=ON")

    answer = await api.client.get("/readyz")
    assert answer.status_code == 503
    assert answer.headers["content-type"] == "application/problem+json"
    body = answer.json()
    assert body["type"] == "urn:pkiforge:problem:not-ready"
    assert body["detail"] == "not ready: write failed"
    assert body["checks"] == {"database": "ok", "write": "failed", "storage": "ok"}
    assert (await api.client.get("/healthz")).status_code == 200  # liveness stays


async def test_a_failed_sync_of_the_wal_makes_it_not_ready(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(self: WalSync) -> None:
        raise StoreUnavailable("sync of the WAL failed: No space left on device")

    monkeypatch.setattr(WalSync, "_sync", failing)
    refused = await api.client.post(
        "/api/v1/services/register",
        headers=api.as_("billing"),
        json={"service_id": "billing", "service_name": "Billing", "names": NAMES},
    )
    assert refused.status_code == 503  # committed, but its sync failed
    answer = await api.client.get("/readyz")
    assert answer.status_code == 503
    assert answer.json()["checks"]["write"] == "failed"


async def test_below_the_reserve_only_new_write_work_is_refused(starved: Api) -> None:
    ready = await starved.client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["storage"] == "below reserve"
    refused = await starved.client.post(
        "/api/v1/certificates/request",
        headers=starved.as_("billing"),
        json={"csr": make_csr(NAMES[0], NAMES)},
    )
    assert refused.status_code == 503
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"] == "urn:pkiforge:problem:storage-full"
    assert refused.json()["detail"].startswith("storage nearly full")
    listed = await starved.client.get("/api/v1/ca")
    assert listed.status_code == 200  # reads go on


async def test_revocations_go_on_below_the_reserve(tmp_path: Path) -> None:
    made = make_api(tmp_path / "home")
    try:
        serial = await _issue(made)
        # the same store, now with a reserve no disk meets
        made.app.state.pkiforge.readiness.reserve.reserve = EVERYTHING
        revoked = await made.client.post(
            f"/api/v1/certificates/{serial}/revoke",
            headers=made.as_("billing"),
            json={"reason": "superseded"},
        )
        assert revoked.status_code == 200, revoked.text
        renewed = await made.client.post(
            f"/api/v1/certificates/{serial}/renew", headers=made.as_("billing"), json={}
        )
        assert renewed.status_code == 503
    finally:
        await made.client.aclose()
        made.pki.close()


def test_every_route_that_writes_takes_the_reserve_or_is_exempt() -> None:
    unsafe = {
        (method, route.path_format): route
        for router in ROUTERS
        for route in router.routes
        if isinstance(route, APIRoute)
        for method in route.methods or ()
        if method not in ("GET", "HEAD", "OPTIONS")
    }
    guarded = {key for key, route in unsafe.items() if NEW_WRITES in route.dependencies}
    assert set(unsafe) >= EXEMPT  # the exemptions name real routes
    assert guarded == set(unsafe) - EXEMPT
    assert ("POST", "/api/v1/certificates/request") in guarded


async def test_readiness_and_storage_gauges(api: Api) -> None:
    exposition = (await api.client.get("/metrics")).text
    values = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }
    assert values[("pkiforge_ready", ())] == 1
    assert values[("pkiforge_readiness_check", (("check", "write"),))] == 1
    reserve = api.app.state.pkiforge.settings.storage.min_free_bytes
    assert values[("pkiforge_storage_reserve_bytes", ())] == reserve == 64 * 1024 * 1024
    assert values[("pkiforge_storage_free_bytes", ())] > 0
