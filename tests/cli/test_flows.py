"""Longer CLI flows: offline root, exports, renewal, tamper detection, `run` on first use."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from tests.cli.conftest import PASSPHRASE, Pkiforge, make_runner


def openssl(*args: str, cwd: Path, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, input=input)


@pytest.fixture
def fresh(tmp_path: Path) -> Pkiforge:
    return make_runner(tmp_path / "D", tmp_path, {"PKIFORGE_CA_PASSPHRASE": PASSPHRASE})


def test_offline_root_flow(tmp_path: Path, fresh: Pkiforge) -> None:
    usb = tmp_path / "usb"
    usb.mkdir()
    r = fresh(
        "init",
        "--root-key-type",
        "p256",
        "--intermediate-key-type",
        "p256",
        "--root-key-out",
        str(usb / "root.key"),
    )
    assert r.code == 0, r.stderr
    assert not (tmp_path / "D" / "ca" / "root").exists()
    assert (usb / "root.key").stat().st_mode & 0o777 == 0o600

    r = fresh("ca", "create-intermediate", "infrastructure", "--key-type", "p256")
    assert r.code == 5 and "kept offline" in r.stderr

    r = fresh("ca", "create-intermediate", "agents", "--csr-out", "agents.csr", "--json")
    assert r.code == 0, r.stderr
    assert json.loads(r.stdout)["status"] == "pending"
    r = fresh(
        "ca",
        "sign-intermediate",
        "--csr",
        "agents.csr",
        "--root-key",
        str(usb / "root.key"),
        "--out",
        "agents.pem",
    )
    assert r.code == 0, r.stderr
    r = fresh("ca", "import-intermediate", "agents", "--cert", "agents.pem", "--json")
    assert r.code == 0, r.stderr
    assert json.loads(r.stdout)["status"] == "active"

    r = fresh(
        "ca",
        "create-intermediate",
        "external",
        "--key-type",
        "ed25519",
        "--root-key",
        str(usb / "root.key"),
    )
    assert r.code == 0, r.stderr

    r = fresh(
        "cert",
        "issue",
        "--cn",
        "agent-1.internal",
        "--issuer",
        "agents",
        "--key-out",
        "a.key",
        "--out",
        "a.pem",
    )
    assert r.code == 0, r.stderr
    (tmp_path / "agents-chain.pem").write_text(fresh("ca", "chain", "agents").stdout)
    root = fresh("ca", "chain", "root").stdout
    (tmp_path / "root.pem").write_text(root)
    v = openssl(
        "verify", "-CAfile", "root.pem", "-untrusted", "agents-chain.pem", "a.pem", cwd=tmp_path
    )
    assert v.returncode == 0, v.stdout + v.stderr

    cas = {c["name"]: c for c in json.loads(fresh("ca", "list", "--json").stdout)}
    assert set(cas) == {"root", "services", "agents", "external"}
    assert cas["root"]["key_location"] == "offline"
    assert cas["external"]["key"] == "Ed25519"

    # the root CRL needs the offline key too
    assert fresh("crl", "generate", "--issuer", "root").code == 5
    r = fresh("crl", "generate", "--issuer", "root", "--root-key", str(usb / "root.key"), "--json")
    assert r.code == 0 and json.loads(r.stdout)["crl_number"] == 2  # init signed the first


def test_exports_and_renewal(tmp_path: Path, pkiforge: Pkiforge, workdir: Path) -> None:
    r = pkiforge(
        "cert",
        "issue",
        "--cn",
        "export.internal",
        "--profile",
        "server",
        "--validity",
        "30d",
        "--key-out",
        "e.key",
        "--out",
        "e.pem",
        "--json",
    )
    assert r.code == 0, r.stderr
    serial = json.loads(r.stdout)["serial"]

    for fmt, check in (
        ("pem", ["x509", "-noout", "-subject", "-in"]),
        ("der", ["x509", "-inform", "DER", "-noout", "-subject", "-in"]),
    ):
        assert pkiforge("cert", "export", serial, "--format", fmt, "--out", f"x.{fmt}").code == 0
        out = openssl(*check, f"x.{fmt}", cwd=workdir)
        assert "export.internal" in out.stdout, out.stderr
    assert pkiforge("cert", "export", serial, "--format", "chain", "--out", "e.chain").code == 0
    assert (workdir / "e.chain").read_text().count("BEGIN CERTIFICATE") == 3

    (workdir / "p12pass").write_text("export-password-123\n")
    r = pkiforge(
        "cert",
        "export",
        serial,
        "--format",
        "pkcs12",
        "--key",
        "e.key",
        "--password-file",
        "p12pass",
        "--out",
        "e.p12",
    )
    assert r.code == 0, r.stderr
    assert (workdir / "e.p12").stat().st_mode & 0o777 == 0o600
    info = openssl(
        "pkcs12", "-in", "e.p12", "-passin", "pass:export-password-123", "-nokeys", cwd=workdir
    )
    assert info.returncode == 0 and info.stdout.count("BEGIN CERTIFICATE") == 3, info.stderr
    assert pkiforge("cert", "issue", "--cn", "other.internal", "--key-out", "other.key").code == 0
    r = pkiforge(
        "cert",
        "export",
        serial,
        "--format",
        "pkcs12",
        "--key",
        "other.key",
        "--password-file",
        "p12pass",
        "--out",
        "wrong.p12",
    )
    assert r.code == 3 and "is not the key of certificate" in r.stderr
    assert not (workdir / "wrong.p12").exists()

    r = pkiforge("cert", "renew", serial, "--json")
    assert r.code == 0, r.stderr
    renewed = json.loads(r.stdout)
    assert renewed["renewed_from"] == serial and renewed["serial"] != serial
    assert (
        renewed["names"] == json.loads(pkiforge("cert", "show", serial, "--json").stdout)["names"]
    )
    assert renewed["profile"] == "server"

    listed = json.loads(pkiforge("cert", "list", "--json", "--expiring-within", "31d").stdout)
    assert {c["serial"] for c in listed} >= {serial, renewed["serial"]}
    assert all(c["status"] == "active" for c in listed)
    listed = json.loads(pkiforge("cert", "list", "--json", "--service", "export.internal").stdout)
    assert len(listed) == 2


def test_audit_tampering_is_named(tmp_path: Path, fresh: Pkiforge) -> None:
    assert fresh("init", "--root-key-type", "p256", "--intermediate-key-type", "p256").code == 0
    assert fresh("cert", "issue", "--cn", "t.internal", "--key-out", "t.key").code == 0
    assert fresh("audit", "verify").code == 0
    with sqlite3.connect(tmp_path / "D" / "pkiforge.db") as db:
        db.execute("UPDATE audit_log SET actor = 'operator:mallory' WHERE seq = 2")
    r = fresh("audit", "verify")
    assert r.code == 8
    assert "entry 2 content does not match its hash (edited)" in r.stderr
    with sqlite3.connect(tmp_path / "D" / "pkiforge.db") as db:
        db.execute("DELETE FROM audit_log WHERE seq = 3")
    r = fresh("audit", "verify", "--json")
    report = json.loads(r.stdout)
    assert r.code == 8 and not report["ok"]
    assert any("entry 3 missing" in p for p in report["problems"])


def test_run_initialises_once_and_never_overwrites(tmp_path: Path) -> None:
    run = make_runner(
        tmp_path / "D",
        tmp_path,
        {"PKIFORGE_CA__ROOT_KEY_TYPE": "p256", "PKIFORGE_CA__INTERMEDIATE_KEY_TYPE": "p256"},
    )
    first = run("run", "--no-serve")
    assert first.code == 0, first.stderr
    assert (tmp_path / "D" / "secrets" / "ca-passphrase").stat().st_mode & 0o777 == 0o600
    # the inventory and audit trail in the home are not world-readable
    assert (tmp_path / "D").stat().st_mode & 0o777 == 0o700
    root_before = run("ca", "chain", "root").stdout
    second = run("run", "--no-serve")
    assert second.code == 0, second.stderr
    assert run("ca", "chain", "root").stdout == root_before
    assert "generated" not in second.stderr


def test_audit_anchor_shows_deleted_tail_and_rewrite(tmp_path: Path, fresh: Pkiforge) -> None:
    assert fresh("init", "--root-key-type", "p256", "--intermediate-key-type", "p256").code == 0
    assert fresh("cert", "issue", "--cn", "a.internal", "--key-out", "a.key").code == 0
    assert fresh("audit", "anchor", "--out", "anchor.json").code == 0
    n = json.loads((tmp_path / "anchor.json").read_text())["seq"]
    assert n == 4  # root, intermediate signed, intermediate created, certificate issued
    assert fresh("audit", "verify", "--anchor", "anchor.json").code == 0

    db = tmp_path / "D" / "pkiforge.db"
    with sqlite3.connect(db) as conn:  # delete the newest entry: the chain alone still holds
        conn.execute("DELETE FROM audit_log WHERE seq = ?", (n,))
    assert fresh("audit", "verify").code == 0
    r = fresh("audit", "verify", "--anchor", "anchor.json")
    assert r.code == 8 and f"anchored entry {n} is missing" in r.stderr

    # rewrite entry n-1 and forge a new entry n: the chain holds, the anchor does not
    from pkiforge.ca.audit import entry_hash
    from pkiforge.store.db import SqlStore

    def store_of(path: Path) -> SqlStore:
        return SqlStore.open(f"sqlite:///{path}")

    with store_of(db).transaction() as tx:
        (last,) = tx.audit.recent(1)
    forged = replace(last, actor="operator:mallory")
    forged = replace(forged, hash=entry_hash(forged))
    with sqlite3.connect(db) as conn:
        conn.execute(
            "UPDATE audit_log SET actor = ?, hash = ? WHERE seq = ?",
            (forged.actor, forged.hash, forged.seq),
        )
    tail = replace(forged, seq=n, prev_hash=forged.hash, action="cert.renew")
    tail = replace(tail, hash=entry_hash(tail))
    with store_of(db).transaction() as tx:
        tx.audit.add(tail)
    assert fresh("audit", "verify").code == 0  # the forged chain is self-consistent
    r = fresh("audit", "verify", "--anchor", "anchor.json", "--json")
    report = json.loads(r.stdout)
    assert r.code == 8
    assert any(f"entry {n} differs from the anchor" in p for p in report["problems"])
