"""The OCSP answer cache on SQLite and PostgreSQL: kept only while the certificate still has
the status it was signed for, dropped by a revocation, found again for refresh when due."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from pkiforge.ca.hierarchy import InitOptions
from pkiforge.ca.ocsp_records import CachedAnswer
from pkiforge.clock import FixedClock
from pkiforge.wiring import Pki, build_pki
from tests.ca.helpers import NOW, PASSPHRASE, csr_bytes, make_settings


@pytest.fixture
def pki(tmp_path: Path, store_url: str) -> Iterator[Pki]:
    home = tmp_path / "home"
    home.mkdir()
    settings = make_settings(home).model_copy(update={"database_url": store_url})
    p = build_pki(settings, PASSPHRASE, FixedClock(NOW))
    p.hierarchy.initialize(InitOptions(root_key_type="p256", intermediate_key_type="p256"))
    yield p
    p.close()


def cached(pki: Pki, serial: int) -> CachedAnswer | None:
    with pki.store.transaction(readonly=True) as tx:
        return tx.ocsp.answer("services", serial, "sha1")


def test_answers_are_kept_dropped_by_revocation_and_due(pki: Pki) -> None:
    record = pki.certificates.issue(
        pki.certificates.request_from_csr(csr_bytes("p256"), service_id="web")
    )
    assert cached(pki, record.serial) is None
    assert pki.ocsp.presign("services", record.serial)
    good = cached(pki, record.serial)
    assert good is not None and good.status == "good"
    assert good.next_update == NOW + dt.timedelta(hours=1)
    assert pki.ocsp.presign("services", record.serial)  # signed again: replaced, not added
    with pki.store.transaction(readonly=True) as tx:
        assert tx.ocsp.due(NOW + dt.timedelta(hours=2), 10) == [("services", record.serial, "sha1")]
        assert tx.ocsp.due(NOW + dt.timedelta(minutes=59), 10) == []

    pki.revocation.ocsp = None  # the revocation alone: it drops the answer
    pki.revocation.revoke(record.serial, x509.ReasonFlags.key_compromise)
    assert cached(pki, record.serial) is None
    # a `good` answer signed before the revocation committed is refused afterwards
    with pki.store.transaction() as tx:
        assert not tx.ocsp.keep(good)
    assert cached(pki, record.serial) is None
    assert pki.ocsp.presign("services", record.serial)
    revoked = cached(pki, record.serial)
    assert revoked is not None and revoked.status == "revoked"
    # an answer for a serial nobody issued is never kept
    with pki.store.transaction() as tx:
        assert not tx.ocsp.keep(CachedAnswer("services", 0x1234, "sha1", "good", NOW, NOW, b"x"))
