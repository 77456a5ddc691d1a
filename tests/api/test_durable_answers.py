"""`sqlite_synchronous: full`: an answer that reports a write waits until the write is on disk."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pkiforge.errors import StoreUnavailable
from pkiforge.store.durable import WalSync

from .helpers import Api, make_api, make_csr
from .test_certificates_api import register

REQ = "/api/v1/certificates/request"


@pytest.fixture
async def durable_api(tmp_path: Path) -> AsyncIterator[Api]:
    made = make_api(tmp_path / "home", sqlite_synchronous="full")
    yield made
    await made.client.aclose()
    made.pki.close()


@pytest.fixture
def barriers(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every barrier the app waits at, with the WAL it syncs (the real barrier still runs)."""
    seen: list[str] = []
    real = WalSync.barrier

    async def counting(self: WalSync) -> None:
        seen.append(self.path)
        await real(self)

    monkeypatch.setattr(WalSync, "barrier", counting)
    return seen


async def test_writes_wait_for_a_sync_of_the_wal_and_reads_do_not(
    durable_api: Api, barriers: list[str], tmp_path: Path
) -> None:
    assert (await durable_api.client.get("/healthz")).status_code == 200
    assert (await durable_api.client.get("/api/v1/ca/root")).status_code == 200
    assert barriers == []
    assert (await register(durable_api, "billing", ["billing.internal"])).status_code == 201
    r = await durable_api.client.post(
        REQ, headers=durable_api.as_("billing"), json={"csr": make_csr("billing.internal")}
    )
    assert r.status_code == 201, r.text
    assert barriers == [str(tmp_path / "home" / "pkiforge.db-wal")] * 2
    metrics = (await durable_api.client.get("/metrics")).text
    assert "pkiforge_durable_wait_seconds_count 2.0" in metrics


async def test_the_answer_is_held_until_the_sync_ends(
    durable_api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert (await register(durable_api, "billing", ["billing.internal"])).status_code == 201
    release = asyncio.Event()
    real = WalSync.barrier

    async def gated(self: WalSync) -> None:
        await release.wait()
        await real(self)

    monkeypatch.setattr(WalSync, "barrier", gated)
    pending = asyncio.ensure_future(
        durable_api.client.post(
            REQ, headers=durable_api.as_("billing"), json={"csr": make_csr("billing.internal")}
        )
    )
    await asyncio.sleep(0.2)
    assert not pending.done()
    # other requests go on meanwhile: the held one gave its turn back
    listed = durable_api.client.get("/api/v1/certificates", headers=durable_api.as_("billing"))
    assert (await asyncio.wait_for(listed, 5)).status_code == 200
    release.set()
    assert (await asyncio.wait_for(pending, 5)).status_code == 201


async def test_a_failed_sync_is_a_503_instead_of_the_answer(
    durable_api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert (await register(durable_api, "billing", ["billing.internal"])).status_code == 201

    async def failing(self: WalSync) -> None:
        raise StoreUnavailable("sync of the WAL failed: Input/output error")

    monkeypatch.setattr(WalSync, "barrier", failing)
    r = await durable_api.client.post(
        REQ, headers=durable_api.as_("billing"), json={"csr": make_csr("billing.internal")}
    )
    assert r.status_code == 503
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["type"] == "urn:pkiforge:problem:unavailable"
    assert "Input/output error" in body["detail"]
    assert "certificate_pem" not in r.text and "BEGIN CERTIFICATE" not in r.text


async def test_without_full_no_answer_waits(tmp_path: Path, barriers: list[str]) -> None:
    made = make_api(tmp_path / "home")
    try:
        assert (await register(made, "billing", ["billing.internal"])).status_code == 201
    finally:
        await made.client.aclose()
        made.pki.close()
    assert barriers == []
