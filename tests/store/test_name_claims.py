"""Name claims: two replicas registering the same name at the same moment cannot both get it."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from pkiforge.ca.authorization import Caller, Operation, ServicePolicy
from pkiforge.ca.registry import RegistryService
from pkiforge.ca.registry_models import ServiceRecord
from pkiforge.errors import Conflict
from pkiforge.store.db import SqlStore
from pkiforge.store.registry_repos import SqlServiceRepository
from pkiforge.wiring import build_pki
from tests.ca.helpers import NOW, PASSPHRASE, make_settings

ADMIN = Caller("ops", ServicePolicy(frozenset(Operation)))


def service(service_id: str, *names: str) -> ServiceRecord:
    return ServiceRecord(service_id, service_id, NOW, NOW, names=names)


def test_concurrent_claims_of_one_name_admit_exactly_one(
    store: SqlStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registries = [
        RegistryService(build_pki(make_settings(tmp_path / f"r{n}"), PASSPHRASE, store=s).ctx)
        for n, s in enumerate([store, SqlStore(store.engine)])
    ]  # two replicas: their own wiring, one database
    read_owners = SqlServiceRepository.owners_of

    def slow(
        self: SqlServiceRepository, keys: Sequence[str], *, claiming: bool = False
    ) -> dict[str, str]:
        owners = read_owners(self, keys, claiming=claiming)
        time.sleep(0.3)  # widen the gap between seeing the name free and taking it
        return owners

    monkeypatch.setattr(SqlServiceRepository, "owners_of", slow)
    start = threading.Barrier(2)
    won: list[str] = []
    refused: list[Conflict] = []

    def claim(n: int) -> None:
        start.wait()
        try:
            registries[n].register(ADMIN, service(f"svc-{n}", "DNS:shared.internal"))
            won.append(f"svc-{n}")
        except Conflict as exc:
            refused.append(exc)

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)

    assert len(won) == 1 and len(refused) == 1, (won, refused)
    assert "already registered to service" in refused[0].message
    with store.transaction(readonly=True) as tx:
        assert tx.services.owners_of(["DNS:shared.internal"]) == {"DNS:shared.internal": won[0]}
