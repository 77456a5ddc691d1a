"""The CRL served lists a revocation once revocations have paused for the rebuild delay (or
the longest wait has passed); a burst shares one CRL; replicas sharing a store sign it once; an
offline key keeps the stored CRL served."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography import x509

from pkiforge.ca.crl_freshness import AT_ONCE, rebuild_due
from pkiforge.ca.hierarchy import InitOptions
from pkiforge.ca.models import CertificateRecord, CRLState, Revocation
from pkiforge.clock import FixedClock
from pkiforge.errors import Conflict
from pkiforge.store.db import SqlStore
from pkiforge.wiring import Pki, build_pki

from .helpers import NOW, PASSPHRASE, csr_bytes, make_pki, make_settings

DELAY = dt.timedelta(seconds=1)  # crl.rebuild_delay's default
WITHIN = dt.timedelta(seconds=3)  # crl.rebuild_within's default
HOUR = dt.timedelta(hours=1)
R = x509.ReasonFlags


def issue(pki: Pki, issuer: str = "services") -> CertificateRecord:
    request = pki.certificates.request_from_csr(csr_bytes("p256"), service_id="web", issuer=issuer)
    return pki.certificates.issue(request)


def listed(pki: Pki, issuer: str = "services") -> tuple[int, set[int]]:
    """The number of the CRL served and the serials on it."""
    crl = x509.load_der_x509_crl(pki.revocation.current_crl(issuer).record.der)
    number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    return number, {entry.serial_number for entry in crl}


def stored_numbers(pki: Pki, issuer: str = "services") -> list[int]:
    with pki.store.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT number FROM crls WHERE issuer = ? ORDER BY id"
            if conn.dialect.name == "sqlite"
            else "SELECT number FROM crls WHERE issuer = %s ORDER BY id",
            (issuer,),
        )
        return [row[0] for row in rows]


SECOND = dt.timedelta(seconds=1)


@pytest.mark.parametrize(
    ("stale_since", "last", "expected"),
    [
        (None, None, NOW + 12 * HOUR),
        (None, NOW + HOUR, NOW + 12 * HOUR),
        (NOW + HOUR, NOW + HOUR, NOW + HOUR + DELAY),
        (NOW + HOUR, NOW + HOUR + SECOND, NOW + HOUR + SECOND + DELAY),
        (NOW + HOUR, NOW + HOUR + 5 * SECOND, NOW + HOUR + WITHIN),
        (NOW + HOUR, NOW + HOUR - SECOND, NOW + HOUR + DELAY),
        (NOW + 12 * HOUR, NOW + 12 * HOUR, NOW + 12 * HOUR),
    ],
    ids=[
        "fresh: half-way",
        "fresh after revocations: half-way",
        "one revocation: the delay after it",
        "another within the delay: the delay after the last",
        "revocations without a pause: the longest wait after the first",
        "clocks apart: never before the delay after the first",
        "late in its life: half-way",
    ],
)
def test_rebuild_due(
    stale_since: dt.datetime | None, last: dt.datetime | None, expected: dt.datetime
) -> None:
    state = CRLState("services", stale_since, last, 3, NOW, NOW + 24 * HOUR)
    assert rebuild_due(state, DELAY, WITHIN) == expected


def test_rebuild_due_without_a_crl_is_now() -> None:
    assert rebuild_due(CRLState("services", None), DELAY, WITHIN) == AT_ONCE
    assert rebuild_due(CRLState("services", NOW, NOW), DELAY, WITHIN) == AT_ONCE


def test_a_revocation_is_served_once_the_delay_has_passed(pki: Pki, clock: FixedClock) -> None:
    assert listed(pki) == (1, set())
    gone = issue(pki)
    pki.revocation.revoke(gone.serial, R.key_compromise)
    served = pki.revocation.current_crl("services")
    assert served.record.number == 1 and served.missing_revocations
    clock.advance(DELAY)
    assert listed(pki) == (2, {gone.serial})
    assert not pki.revocation.current_crl("services").missing_revocations
    clock.advance(HOUR)
    assert listed(pki) == (2, {gone.serial})  # fresh: served again, not signed again


def test_a_burst_of_revocations_shares_one_crl(pki: Pki, clock: FixedClock) -> None:
    assert listed(pki)[0] == 1
    certs = [issue(pki) for _ in range(20)]
    for record in certs:
        pki.revocation.revoke(record.serial, R.superseded)
        assert listed(pki) == (1, set())  # asked after every revocation: no pause yet
        clock.advance(WITHIN / 40)
    clock.advance(DELAY)
    assert listed(pki) == (2, {r.serial for r in certs})
    assert stored_numbers(pki) == [1, 2]


def test_revocations_without_a_pause_wait_no_longer_than_rebuild_within(
    pki: Pki, clock: FixedClock
) -> None:
    assert listed(pki)[0] == 1
    certs = [issue(pki) for _ in range(8)]
    for record in certs[:6]:  # one every half delay: never a pause as long as the delay
        pki.revocation.revoke(record.serial, R.superseded)
        assert listed(pki)[0] == 1
        clock.advance(DELAY / 2)
    assert listed(pki) == (2, {r.serial for r in certs[:6]})  # WITHIN after the first
    for record in certs[6:]:
        pki.revocation.revoke(record.serial, R.superseded)
        clock.advance(DELAY / 2)
    assert listed(pki)[0] == 2
    clock.advance(DELAY / 2)
    assert listed(pki) == (3, {r.serial for r in certs})


def test_the_crl_is_replaced_half_way_to_next_update(pki: Pki, clock: FixedClock) -> None:
    assert listed(pki)[0] == 1
    clock.advance(12 * HOUR - dt.timedelta(seconds=1))
    assert listed(pki)[0] == 1
    clock.advance(dt.timedelta(seconds=1))
    assert listed(pki)[0] == 2


def test_refresh_signs_only_when_due_and_numbers_only_grow(pki: Pki, clock: FixedClock) -> None:
    first = pki.revocation.refresh_crl("services")
    assert pki.revocation.refresh_crl("services") == first
    forced = pki.revocation.generate_crl("services")  # the operator's `crl generate`
    assert forced.number == first.number + 1
    # a CA row written from an old copy carries an old CRL number: the next CRL is still newer
    with pki.store.transaction() as tx:
        ca = tx.cas.get("services")
        assert ca is not None
        tx.cas.update(replace(ca, crl_number=0))
    record = issue(pki)
    pki.revocation.revoke(record.serial, R.superseded)
    clock.advance(DELAY)
    assert pki.revocation.refresh_crl("services").number == forced.number + 1
    assert stored_numbers(pki) == [1, 2, 3]


@pytest.fixture
def replicas(store_url: str, tmp_path: Path, clock: FixedClock) -> Iterator[tuple[Pki, Pki]]:
    """Two processes' worth of services (each with its own caches) on one store."""
    settings = make_settings(tmp_path / "home")
    settings.home.mkdir(parents=True)
    a = build_pki(settings, PASSPHRASE, clock, store=SqlStore.open(store_url))
    a.hierarchy.initialize(InitOptions())
    b = build_pki(settings, PASSPHRASE, clock, store=SqlStore.open(store_url))
    for pki in (a, b):  # read the store at every call: what a replica sees within a second
        pki.revocation.published.recheck = 0.0
    yield a, b
    b.close()
    a.close()


def test_replicas_sign_each_crl_once(replicas: tuple[Pki, Pki], clock: FixedClock) -> None:
    a, b = replicas
    assert listed(a) == (1, set()) == listed(b)
    gone = issue(a)
    a.revocation.revoke(gone.serial, R.key_compromise)
    served = b.revocation.current_crl("services")
    assert served.record.number == 1 and served.missing_revocations
    clock.advance(DELAY)
    # both replicas, two threads each, find the CRL due at the same moment
    start = threading.Barrier(4)
    seen: list[tuple[int, set[int]]] = []

    def serve(pki: Pki) -> None:
        start.wait()
        seen.append(listed(pki))

    threads = [threading.Thread(target=serve, args=(p,)) for p in (a, b, a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert seen == [(2, {gone.serial})] * 4
    assert stored_numbers(a) == [1, 2]


def test_an_offline_key_keeps_the_stored_crl(tmp_path: Path, clock: FixedClock) -> None:
    offline = tmp_path / "usb" / "root-key.pem"
    pki = make_pki(
        tmp_path / "home", clock=clock, options=InitOptions(root_key_location=offline.as_posix())
    )
    try:
        with pytest.raises(Conflict, match="kept offline"):
            pki.revocation.current_crl("root")  # nothing published yet
        pki.revocation.generate_crl("root", key_ref=f"file:{offline}")
        services = pki.hierarchy.get("services").certificate
        assert services is not None
        pki.ca_revocation.revoke("services", R.ca_compromise)  # the root key is not here
        clock.advance(13 * HOUR)  # past the delay, past half-way
        served = pki.revocation.current_crl("root")
        assert served.record.number == 1 and served.missing_revocations
        # past nextUpdate (crl.root_next_update, 180 days): nothing valid is left to serve
        clock.advance(180 * 24 * HOUR - 13 * HOUR)
        with pytest.raises(Conflict, match="kept offline"):
            pki.revocation.current_crl("root")
    finally:
        pki.close()


def test_a_ca_lists_revoked_subordinates_and_never_itself(pki: Pki, clock: FixedClock) -> None:
    root = pki.hierarchy.get("root").certificate
    services = pki.hierarchy.get("services").certificate
    assert root is not None and services is not None
    assert listed(pki, "root") == (1, set())
    assert pki.ca_revocation.revoke("services", R.ca_compromise).root_crl is not None  # CRL 2
    # the root's own row revoked too (both rows have issuer root), as no use-case can: the
    # leaf path refuses CA certificates and `ca revoke` the root
    with pki.store.transaction() as tx:
        tx.certificates.revoke(root.serial_number, Revocation(R.ca_compromise, NOW, None, "test"))
    pki.revocation.published.forget("root")
    clock.advance(DELAY)
    assert listed(pki, "root") == (3, {services.serial_number})
