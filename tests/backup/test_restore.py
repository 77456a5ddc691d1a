"""Backup and restore in process, with injected clocks: what a restore must not get wrong."""

from __future__ import annotations

import datetime as dt
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from sqlalchemy import select

from pkiforge.backup.aftercare import CRL_ACTION, GAP_ACTION, NONCE_MEMORY_ROW
from pkiforge.backup.archive import open_backup
from pkiforge.ca.audit import verify_chain
from pkiforge.ca.hierarchy import InitOptions
from pkiforge.errors import Conflict, IntegrityError, InvalidInput, NotFound
from pkiforge.store.tables import NonceRow
from pkiforge.wiring import Pki
from tests.ca.helpers import NOW, PASSPHRASE, make_pki

from .helpers import SECRET, backup, crl_number, issue, open_restored, restore

HOUR = dt.timedelta(hours=1)


@pytest.fixture
def source(tmp_path: Path) -> Iterator[Pki]:
    """A PKI with history: certificates, a revocation, three CRLs of `services`."""
    pki = make_pki(tmp_path / "home")
    for i in range(3):
        issue(pki, f"api{i}.example.internal")
    pki.revocation.revoke(issue(pki, "gone.example.internal").serial, x509.ReasonFlags.superseded)
    for _ in range(3):
        pki.revocation.generate_crl("services")
    yield pki
    pki.close()


def test_backup_verify_restore_round_trip(source: Pki, tmp_path: Path) -> None:
    manifest = backup(source, tmp_path / "b.pkb")
    # root, services, four leaves, and the services CA's delegated OCSP responder, made when
    # the revocation's answer was signed
    assert manifest.counts.certificates == 2 + 4 + 1
    assert manifest.counts.revoked == 1
    assert manifest.counts.crl_numbers == {"root": 0, "services": 3}
    assert manifest.schema_revision is not None and manifest.database_backend == "sqlite"
    names = {f.path for f in manifest.files}
    assert {"database/pkiforge.db", "home/ca/root/key.pem", "home/ca/services/key.pem"} <= names
    assert not manifest.includes_ca_passphrase

    folder = tmp_path / "check"
    folder.mkdir()
    opened = open_backup(tmp_path / "b.pkb", SECRET, folder)
    assert opened.ok, opened.problems
    assert opened.counts == manifest.counts

    report = restore(tmp_path / "b.pkb", tmp_path / "restored", NOW + HOUR)
    assert report.manifest.counts == manifest.counts
    home = tmp_path / "restored"
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "ca/services/key.pem").stat().st_mode) == 0o600
    # the keys are the same encrypted files; the CA passphrase opens them as before
    assert (home / "ca/services/key.pem").read_bytes() == (
        source.settings.home / "ca/services/key.pem"
    ).read_bytes()
    restored = open_restored(home, NOW + HOUR)
    try:
        with restored.store.transaction(readonly=True) as tx:
            assert verify_chain(tx.audit.iterate()).ok
        leaf = issue(restored, "after.example.internal")  # the intermediate's key works
        assert leaf.certificate is not None
    finally:
        restored.close()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging


def test_crl_numbers_never_go_backwards(source: Pki, tmp_path: Path) -> None:
    """CRLs published after the backup are unknown to it: the restored issuer goes past them."""
    backup(source, tmp_path / "b.pkb")
    published = [crl_number(source.revocation.generate_crl("services").der) for _ in range(5)]
    assert published[-1] == 8

    gap = dt.timedelta(days=2)
    report = restore(tmp_path / "b.pkb", tmp_path / "restored", NOW + gap)
    advance = {c.issuer: c for c in report.aftercare.crls}
    # the rule: past the backup's highest by 2 per second of the gap, at least by 100,000
    assert advance["services"].highest == 3
    assert advance["services"].next_number == 3 + 2 * int(gap.total_seconds()) + 1
    assert advance["root"].next_number == 0 + 2 * int(gap.total_seconds()) + 1

    restored = open_restored(tmp_path / "restored", NOW + gap)
    try:
        # the stored CRL is stale at once: the next one served is signed with the new number
        served = restored.revocation.current_crl("services")
        assert crl_number(served.record.der) == advance["services"].next_number
        assert crl_number(served.record.der) > max(published)
        entries = {e.subject: e for e in _audit(restored) if e.action == CRL_ACTION}
        assert entries["services"].details["next_crl_number"] == advance["services"].next_number
    finally:
        restored.close()


def test_crl_margin_and_floor(source: Pki, tmp_path: Path) -> None:
    backup(source, tmp_path / "b.pkb")
    # a short gap: the margin decides
    short = restore(tmp_path / "b.pkb", tmp_path / "a", NOW + dt.timedelta(seconds=5))
    assert {c.issuer: c.next_number for c in short.aftercare.crls}["services"] == 3 + 100_000 + 1
    # the operator knows a higher number was published: the floor decides
    floor = restore(
        tmp_path / "b.pkb",
        tmp_path / "b",
        NOW + HOUR,
        crl_number_margin=10,
        crl_number_floor=5_000_000,
    )
    assert {c.next_number for c in floor.aftercare.crls} == {5_000_001}
    # a number that would not fit the column is refused, and nothing is left behind
    with pytest.raises(InvalidInput, match="CRL number"):
        restore(tmp_path / "b.pkb", tmp_path / "c", NOW + HOUR, crl_number_floor=2**31 - 1)
    assert not (tmp_path / "c").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_the_gap_is_recorded_and_later_certificates_are_unknown(
    source: Pki, tmp_path: Path
) -> None:
    backup(source, tmp_path / "b.pkb")
    later = issue(source, "later.example.internal")  # after the backup
    restore(tmp_path / "b.pkb", tmp_path / "restored", NOW + 3 * HOUR)
    restored = open_restored(tmp_path / "restored", NOW + 3 * HOUR)
    try:
        with pytest.raises(NotFound):
            restored.certificates.get(later.serial)
        gaps = [e for e in _audit(restored) if e.action == GAP_ACTION]
        assert len(gaps) == 1
        details = gaps[0].details
        assert details["backup_created_at"] == NOW.isoformat()
        assert details["restored_at"] == (NOW + 3 * HOUR).isoformat()
        assert details["gap_seconds"] == 3 * 3600
        assert "not in this store" in details["unknown"]
    finally:
        restored.close()


def test_nonce_memory_starts_at_the_restore(source: Pki, tmp_path: Path) -> None:
    """The database nonce store reads this row: signatures made before it are refused."""
    backup(source, tmp_path / "b.pkb")
    restore(tmp_path / "b.pkb", tmp_path / "restored", NOW + HOUR)
    restored = open_restored(tmp_path / "restored", NOW + HOUR)
    try:
        with restored.store.engine.connect() as c:
            row = c.execute(
                select(NonceRow.expires_at).where(NonceRow.nonce_key == NONCE_MEMORY_ROW)
            ).scalar_one()
        assert row.replace(tzinfo=dt.UTC) == NOW + HOUR
    finally:
        restored.close()


def test_refuses_a_home_that_is_not_empty(source: Pki, tmp_path: Path) -> None:
    backup(source, tmp_path / "b.pkb")
    home = source.settings.home
    before = sorted((p.relative_to(home), p.stat().st_mtime_ns) for p in home.rglob("*"))
    with pytest.raises(Conflict, match="already holds a database"):
        restore(tmp_path / "b.pkb", home, NOW + HOUR)
    assert sorted((p.relative_to(home), p.stat().st_mtime_ns) for p in home.rglob("*")) == before
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("x")
    with pytest.raises(Conflict, match="already holds files"):
        restore(tmp_path / "b.pkb", other, NOW + HOUR)
    empty = tmp_path / "empty"
    empty.mkdir()
    restore(tmp_path / "b.pkb", empty, NOW + HOUR)  # an empty folder is fine
    assert (empty / "pkiforge.db").is_file()


def test_a_damaged_backup_restores_nothing(source: Pki, tmp_path: Path) -> None:
    backup(source, tmp_path / "b.pkb")
    raw = (tmp_path / "b.pkb").read_bytes()
    (tmp_path / "b.pkb").write_bytes(raw[:-200] + bytes([raw[-200] ^ 1]) + raw[-199:])
    with pytest.raises(IntegrityError):
        restore(tmp_path / "b.pkb", tmp_path / "restored", NOW + HOUR)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.pkb", "home"]


def test_ca_passphrase_only_when_asked(source: Pki, tmp_path: Path) -> None:
    without = backup(source, tmp_path / "a.pkb")
    assert not any("secrets" in f.path for f in without.files)
    with_it = backup(source, tmp_path / "b.pkb", ca_passphrase=PASSPHRASE)
    assert with_it.includes_ca_passphrase
    restore(tmp_path / "b.pkb", tmp_path / "restored", NOW + HOUR)
    stored = tmp_path / "restored" / "secrets" / "ca-passphrase"
    assert stored.read_bytes().strip() == PASSPHRASE
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600


def test_keys_outside_the_home_are_named_not_copied(tmp_path: Path) -> None:
    media = tmp_path / "media"
    media.mkdir()
    pki = make_pki(
        tmp_path / "home", options=InitOptions(root_key_location=str(media / "root.pem"))
    )
    try:
        manifest = backup(pki, tmp_path / "b.pkb")
    finally:
        pki.close()
    assert manifest.keys_outside_home == ["root (offline)"]
    assert not any("root" in f.path and f.path.endswith(".pem") for f in manifest.files)


def test_backup_refuses_to_overwrite(source: Pki, tmp_path: Path) -> None:
    (tmp_path / "b.pkb").write_bytes(b"keep")
    with pytest.raises(Conflict):
        backup(source, tmp_path / "b.pkb")
    assert (tmp_path / "b.pkb").read_bytes() == b"keep"
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]


def _audit(pki: Pki) -> list:  # type: ignore[type-arg]
    with pki.store.transaction(readonly=True) as tx:
        return list(tx.audit.iterate())


def _reseal(archive: Path, edit: object) -> None:
    """Open the archive, let `edit` change its tar members, seal it again with the same secret:
    an archive whose tag is good but whose content differs from its manifest."""
    import io
    import tarfile

    from pkiforge.backup.sealed import SealingWriter, unseal

    plain = io.BytesIO()
    unseal(archive, SECRET, plain)
    plain.seek(0)
    members = []
    with tarfile.open(fileobj=plain, mode="r:") as tar:
        for m in tar.getmembers():
            f = tar.extractfile(m)
            members.append((m.name, f.read() if f else b""))
    members = edit(members)  # type: ignore[operator]
    with archive.open("wb") as out:
        writer = SealingWriter(out, SECRET, log2_n=14)
        with tarfile.open(fileobj=writer, mode="w|") as tar:  # type: ignore[call-overload]
            for name, data in members:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        writer.close()


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        pytest.param(
            lambda ms: [(n, d[:-1] + b"!" if n.endswith("services/key.pem") else d) for n, d in ms],
            "home/ca/services/key.pem: does not match its SHA-256",
            id="file-changed",
        ),
        pytest.param(
            lambda ms: [(n, d) for n, d in ms if not n.endswith("root/key.pem")],
            "home/ca/root/key.pem: named in the manifest, missing",
            id="file-missing",
        ),
        pytest.param(
            lambda ms: [*ms, ("home/extra.txt", b"x")],
            "'home/extra.txt': not in the manifest",
            id="file-added",
        ),
    ],
)
def test_content_must_match_the_manifest(
    source: Pki, tmp_path: Path, edit: object, problem: str
) -> None:
    backup(source, tmp_path / "b.pkb")
    _reseal(tmp_path / "b.pkb", edit)
    folder = tmp_path / "check"
    folder.mkdir()
    opened = open_backup(tmp_path / "b.pkb", SECRET, folder)
    assert any(p.startswith(problem) for p in opened.problems), opened.problems
    with pytest.raises(IntegrityError, match="does not check out"):
        restore(tmp_path / "b.pkb", tmp_path / "restored", NOW + HOUR)
    assert not (tmp_path / "restored").exists()


def test_database_figures_must_match_the_manifest(source: Pki, tmp_path: Path) -> None:
    """A database copy with a certificate taken out (and the file hash made to match) is
    caught by the figures and the audit chain."""
    import hashlib
    import json
    import sqlite3

    backup(source, tmp_path / "b.pkb")

    def edit(members: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
        db = tmp_path / "copy.db"
        db.write_bytes(dict(members)["database/pkiforge.db"])
        with sqlite3.connect(db) as c:
            c.execute("DELETE FROM audit_log WHERE seq = (SELECT max(seq) FROM audit_log)")
        c.close()
        data = db.read_bytes()
        manifest = json.loads(dict(members)["manifest.json"])
        for f in manifest["files"]:
            if f["path"] == "database/pkiforge.db":
                f["sha256"], f["size"] = hashlib.sha256(data).hexdigest(), len(data)
        out = dict(members)
        out["manifest.json"] = json.dumps(manifest).encode()
        out["database/pkiforge.db"] = data
        return [(n, out[n]) for n, _ in members]

    _reseal(tmp_path / "b.pkb", edit)
    folder = tmp_path / "check"
    folder.mkdir()
    opened = open_backup(tmp_path / "b.pkb", SECRET, folder)
    assert "audit_entries in the database copy differs from the manifest" in opened.problems
    assert "the audit chain's head differs from the manifest" in opened.problems


def test_the_database_nonce_store_refuses_signatures_from_before_the_restore(
    source: Pki, tmp_path: Path
) -> None:
    """With the database nonce store's memory start (issue 21): a process that began before
    the restore (another replica, say) refuses a signature made before it, accepts one after."""
    nonces = pytest.importorskip("pkiforge.store.nonces")
    from pkiforge.clock import FixedClock
    from pkiforge.errors import AuthenticationFailed

    assert nonces.MEMORY_ROW == NONCE_MEMORY_ROW
    backup(source, tmp_path / "b.pkb")
    restore(tmp_path / "b.pkb", tmp_path / "restored", NOW + HOUR)
    restored = open_restored(tmp_path / "restored", NOW + HOUR)
    try:
        started = FixedClock(NOW + HOUR - dt.timedelta(minutes=10))
        store = nonces.SqlNonceStore(restored.store, clock=started)
        made_before = NOW + HOUR - dt.timedelta(minutes=1)
        with pytest.raises(AuthenticationFailed):
            store.check_and_store("key", "n1", 300, created=made_before)
        started.advance(dt.timedelta(minutes=11))
        assert store.check_and_store("key", "n2", 300, created=NOW + HOUR + dt.timedelta(seconds=5))
    finally:
        restored.close()


def test_which_database_a_restore_writes(source: Pki, tmp_path: Path) -> None:
    """A SQLite path in the restored config is not followed (the home gets its own file, and
    the report says the config names another); an explicit SQLite URL is refused."""
    config = source.settings.home / "config.yaml"
    config.write_text(f"database_url: sqlite:///{tmp_path / 'elsewhere.db'}\n")
    backup(source, tmp_path / "b.pkb")
    report = restore(tmp_path / "b.pkb", tmp_path / "restored", NOW + HOUR)
    assert report.database == "sqlite" and report.config_names_other_database
    assert (tmp_path / "restored" / "pkiforge.db").is_file()
    assert not (tmp_path / "elsewhere.db").exists()
    with pytest.raises(InvalidInput, match="must be a PostgreSQL URL"):
        restore(
            tmp_path / "b.pkb",
            tmp_path / "other",
            NOW + HOUR,
            database_url=f"sqlite:///{tmp_path / 'x.db'}",
        )
    assert not (tmp_path / "other").exists()
