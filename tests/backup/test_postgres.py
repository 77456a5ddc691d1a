"""Backups of a PostgreSQL store: one REPEATABLE READ snapshot, restored into SQLite or into an
empty PostgreSQL database in one transaction."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from sqlalchemy import create_engine, func, select, text

from pkiforge.backup.aftercare import GAP_ACTION
from pkiforge.ca.audit import verify_chain
from pkiforge.ca.hierarchy import InitOptions
from pkiforge.clock import FixedClock
from pkiforge.errors import Conflict
from pkiforge.store.tables import CertificateRow, CRLRow
from pkiforge.wiring import Pki, build_pki
from tests.ca.helpers import NOW, PASSPHRASE, make_settings
from tests.conftest import PG_ADMIN_URL, _empty_postgres

from .helpers import backup, crl_number, issue, restore

pytestmark = pytest.mark.postgres
HOUR = dt.timedelta(hours=1)


@pytest.fixture
def pg_source(tmp_path: Path, postgres_url: str) -> Iterator[Pki]:
    _empty_postgres(postgres_url)
    home = tmp_path / "home"
    home.mkdir()
    settings = make_settings(home).model_copy(update={"database_url": postgres_url})
    pki = build_pki(settings, PASSPHRASE, FixedClock(NOW))
    pki.hierarchy.initialize(InitOptions())
    for i in range(3):
        issue(pki, f"api{i}.example.internal")
    pki.revocation.revoke(issue(pki, "gone.example.internal").serial, x509.ReasonFlags.superseded)
    pki.revocation.generate_crl("services")
    pki.revocation.generate_crl("services")
    yield pki
    pki.close()


@pytest.fixture
def empty_database() -> Iterator[str]:
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"pkiforge_restore_{secrets.token_hex(6)}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_postgres_backup_restores_into_sqlite(pg_source: Pki, tmp_path: Path) -> None:
    manifest = backup(pg_source, tmp_path / "b.pkb")
    assert manifest.database_backend == "postgresql"
    # root, services, four leaves and the services CA's delegated OCSP responder, made when
    # the revocation's answer was signed
    assert manifest.counts.certificates == 7 and manifest.counts.revoked == 1
    assert manifest.counts.crl_numbers["services"] == 2
    restore(tmp_path / "b.pkb", tmp_path / "restored", NOW + HOUR)
    clock = FixedClock(NOW + HOUR)
    restored = build_pki(make_settings(tmp_path / "restored"), PASSPHRASE, clock)
    try:
        with restored.store.transaction(readonly=True) as tx:
            report = verify_chain(tx.audit.iterate())
        assert report.ok and report.entries == manifest.counts.audit_entries + 3
        # marked stale by the restore: replaced within crl.rebuild_within (3 s)
        clock.advance(dt.timedelta(seconds=3))
        served = restored.revocation.current_crl("services")
        assert crl_number(served.record.der) == 2 + 100_000 + 1
    finally:
        restored.close()


def test_postgres_backup_restores_into_an_empty_postgres(
    pg_source: Pki, tmp_path: Path, empty_database: str
) -> None:
    backup(pg_source, tmp_path / "b.pkb")
    # the source database is not empty: refused, nothing written
    with pytest.raises(Conflict, match="already holds pkiforge tables"):
        restore(
            tmp_path / "b.pkb",
            tmp_path / "x",
            NOW + HOUR,
            database_url=pg_source.settings.database_url,
        )
    assert not (tmp_path / "x").exists()

    report = restore(
        tmp_path / "b.pkb", tmp_path / "restored", NOW + HOUR, database_url=empty_database
    )
    assert report.database == "postgresql"
    assert not list((tmp_path / "restored").glob("pkiforge.db*"))
    settings = make_settings(tmp_path / "restored").model_copy(
        update={"database_url": empty_database}
    )
    restored = build_pki(settings, PASSPHRASE, FixedClock(NOW + HOUR))
    try:
        with restored.store.transaction(readonly=True) as tx:
            report_chain = verify_chain(tx.audit.iterate())
            gaps = [e for e in tx.audit.iterate() if e.action == GAP_ACTION]
        assert report_chain.ok and len(gaps) == 1
        with restored.store.engine.connect() as c:
            assert c.execute(select(func.count()).select_from(CertificateRow)).scalar() == 7
        # the sequences continue after the imported rows: a new CRL row gets a new id
        restored.revocation.generate_crl("services")
        with restored.store.engine.connect() as c:
            assert c.execute(select(func.count()).select_from(CRLRow)).scalar() == 3
        issue(restored, "after.example.internal")
    finally:
        restored.close()
