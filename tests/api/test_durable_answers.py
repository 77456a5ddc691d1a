"""`sqlite_synchronous: full`: a request that wrote is answered only once its writes are on disk."""

from __future__ import annotations

import asyncio
import inspect
import re
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fastapi.routing import APIRoute

from pkiforge.api.app import ROUTERS
from pkiforge.errors import StoreUnavailable
from pkiforge.store.durable import WalSync

from .helpers import Api, make_api, make_csr
from .test_certificates_api import register

REQ = "/api/v1/certificates/request"


@pytest.fixture
async def durable_api(tmp_path: Path) -> AsyncIterator[Api]:
    made = make_api(tmp_path / "home")  # sqlite_synchronous defaults to full
    yield made
    await made.client.aclose()
    made.pki.close()


@pytest.fixture
def syncs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every WAL the store syncs (the real sync still runs)."""
    seen: list[str] = []
    real = WalSync._sync

    def counting(self: WalSync) -> None:
        seen.append(self.path)
        real(self)

    monkeypatch.setattr(WalSync, "_sync", counting)
    return seen


async def test_writes_wait_for_a_sync_of_the_wal_and_reads_do_not(
    durable_api: Api, syncs: list[str], tmp_path: Path
) -> None:
    assert (await durable_api.client.get("/healthz")).status_code == 200
    assert (await durable_api.client.get("/api/v1/ca/root")).status_code == 200
    assert syncs == []
    assert (await register(durable_api, "billing", ["billing.internal"])).status_code == 201
    r = await durable_api.client.post(
        REQ, headers=durable_api.as_("billing"), json={"csr": make_csr("billing.internal")}
    )
    assert r.status_code == 201, r.text
    assert syncs and set(syncs) == {str(tmp_path / "home" / "pkiforge.db-wal")}
    waits = len(syncs)  # one request at a time: a sync per wait
    metrics = (await durable_api.client.get("/metrics")).text
    waited = re.search(r"^pkiforge_durable_wait_seconds_count (\S+)$", metrics, re.MULTILINE)
    assert waited is not None and float(waited.group(1)) >= waits


async def test_a_failed_sync_is_a_503_instead_of_the_answer(
    durable_api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert (await register(durable_api, "billing", ["billing.internal"])).status_code == 201

    def failing(self: WalSync) -> None:
        raise StoreUnavailable("sync of the WAL failed: Input/output error")

    monkeypatch.setattr(WalSync, "_sync", failing)
    r = await durable_api.client.post(
        REQ, headers=durable_api.as_("billing"), json={"csr": make_csr("billing.internal")}
    )
    assert r.status_code == 503
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["type"] == "urn:pkiforge:problem:unavailable"
    assert "Input/output error" in body["detail"]
    assert "certificate_pem" not in r.text and "BEGIN CERTIFICATE" not in r.text


async def test_without_full_nothing_waits(tmp_path: Path, syncs: list[str]) -> None:
    made = make_api(tmp_path / "home", sqlite_synchronous="normal")
    try:
        assert made.pki.store.durable is None
        assert (await register(made, "billing", ["billing.internal"])).status_code == 201
    finally:
        await made.client.aclose()
        made.pki.close()
    assert syncs == []


async def test_an_issuance_waits_for_one_sync_that_covers_its_reservation(
    durable_api: Api, syncs: list[str]
) -> None:
    assert (await register(durable_api, "billing", ["billing.internal"])).status_code == 201
    headers = durable_api.as_("billing")
    first = await durable_api.client.post(
        REQ, headers=headers, json={"csr": make_csr("billing.internal")}
    )
    assert first.status_code == 201, first.text
    before = len(syncs)
    r = await durable_api.client.post(
        REQ, headers=headers, json={"csr": make_csr("billing.internal")}
    )
    assert r.status_code == 201, r.text
    # the pending row is committed without a wait; the issued row's sync writes both out
    assert len(syncs) - before == 1


async def test_the_answer_waits_for_the_sync_its_commit_owes(
    durable_api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert (await register(durable_api, "billing", ["billing.internal"])).status_code == 201
    gate, started = threading.Event(), threading.Event()
    real = WalSync._sync

    def held(self: WalSync) -> None:
        started.set()
        assert gate.wait(10), "gate never opened"
        real(self)

    monkeypatch.setattr(WalSync, "_sync", held)
    answer = asyncio.create_task(
        durable_api.client.post(
            REQ, headers=durable_api.as_("billing"), json={"csr": make_csr("billing.internal")}
        )
    )
    while not started.is_set():
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)
    assert not answer.done()  # committed, but not answered before the disk has it
    gate.set()
    assert (await answer).status_code == 201


def test_on_sqlite_the_core_runs_on_the_event_loop(durable_api: Api) -> None:
    assert durable_api.app.state.pkiforge.core_inline


def test_every_route_that_writes_calls_the_core_as_a_coroutine() -> None:
    """A plain `def` route would still be durable (its thread waits for the sync) but would
    hold a thread meanwhile: routes that change state go through `@core_call`."""
    writing = [
        r
        for router in ROUTERS
        for r in router.routes
        if isinstance(r, APIRoute) and r.methods & {"POST", "PUT", "PATCH", "DELETE"}
    ]
    assert writing
    plain = [r.path for r in writing if not inspect.iscoroutinefunction(r.endpoint)]
    assert plain == []
