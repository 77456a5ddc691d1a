"""`service_names` follows `services.names` and answers the ownership lookups (SQLite and
PostgreSQL): registering, changing and re-registering names, and lookups of many keys."""

from __future__ import annotations

from dataclasses import replace

import sqlalchemy as sa

from pkiforge.ca.name_index import pattern_key
from pkiforge.ca.registry_models import ServiceRecord
from pkiforge.store.db import SqlStore

from .helpers import NOW


def service(service_id: str, *names: str) -> ServiceRecord:
    return ServiceRecord(service_id, service_id, NOW, NOW, names=names)


def index(store: SqlStore) -> set[tuple[str, str, str]]:
    with store.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT key, service_id, pattern FROM service_names"))
        return {(r[0], r[1], r[2]) for r in rows}


def test_the_index_follows_registrations_and_updates(store: SqlStore) -> None:
    orders = service("orders", "DNS:orders.internal", "DNS:*.orders.internal", "IP:10.0.0.7")
    with store.transaction() as tx:
        tx.services.add(orders)
        tx.services.add(service("billing", "DNS:billing.internal"))
    assert index(store) == {
        ("DNS:orders.internal", "orders", "DNS:orders.internal"),
        ("DNS:*.orders.internal", "orders", "DNS:*.orders.internal"),
        ("IP:10.0.0.7", "orders", "IP:10.0.0.7"),
        ("DNS:billing.internal", "billing", "DNS:billing.internal"),
    }
    with store.transaction() as tx:  # a name given up is free again; a new one is filed
        tx.services.update(replace(orders, names=("DNS:orders.internal", "URI:spiffe://t/o")))
    assert {r for r in index(store) if r[1] == "orders"} == {
        ("DNS:orders.internal", "orders", "DNS:orders.internal"),
        ("URI:spiffe://t/o", "orders", "URI:spiffe://t/o"),
    }
    with store.transaction() as tx:  # an update that keeps the names leaves the index alone
        tx.services.update(replace(orders, service_name="Orders", names=orders.names))
    with store.transaction(readonly=True) as tx:
        assert tx.services.owners_of(["IP:10.0.0.7"]) == {"IP:10.0.0.7": "orders"}


def test_owners_of_reads_only_the_keys_asked_for(store: SqlStore) -> None:
    with store.transaction() as tx:
        for i in range(40):
            tx.services.add(service(f"svc-{i}", f"DNS:s{i}.internal", f"DNS:*.s{i}.internal"))
    with store.transaction(readonly=True) as tx:
        assert tx.services.owners_of([]) == {}
        assert tx.services.owners_of(["DNS:nobody.internal"]) == {}
        assert tx.services.owners_of(["DNS:x.s7.internal", "DNS:*.s7.internal"]) == {
            "DNS:*.s7.internal": "svc-7"
        }
        # more keys than one prepared statement takes: looked up in batches, each key once
        keys = [pattern_key(f"DNS:s{i}.internal") for i in range(40)] + ["DNS:s3.internal"]
        assert tx.services.owners_of(keys) == {f"DNS:s{i}.internal": f"svc-{i}" for i in range(40)}


def test_a_rolled_back_registration_leaves_no_index_rows(store: SqlStore) -> None:
    try:
        with store.transaction() as tx:
            tx.services.add(service("ghost", "DNS:ghost.internal"))
            raise RuntimeError("abort")
    except RuntimeError:
        pass
    assert index(store) == set()


def test_an_exact_name_is_found_before_a_wildcard_that_covers_it(store: SqlStore) -> None:
    # "zz" registered the exact name and "aa" a wildcard over it: the exact claim comes first
    # whatever the services' names, so the ownership check gives the name to "zz"
    with store.transaction() as tx:
        tx.services.add(service("aa", "DNS:*.b.internal"))
        tx.services.add(service("zz", "DNS:x.b.internal"))
    with store.transaction(readonly=True) as tx:
        owners = tx.services.owners_of(["DNS:*.b.internal", "DNS:x.b.internal"])
    assert list(owners.items()) == [("DNS:x.b.internal", "zz"), ("DNS:*.b.internal", "aa")]
