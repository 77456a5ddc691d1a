"""A backup taken while a server issues, over a store of 100,000 certificates, restored into a
new home and served: what it holds verifies with openssl against the restored chain, what was
issued after it is unknown, and the restored CRL numbers go past the old server's."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.api.helpers import make_csr
from tests.api.server import Home, env, make_home, start_server

pytestmark = pytest.mark.slow
ROWS = 100_000
REVOKED = 2_000
BACKUP_ENV = {"PKIFORGE_BACKUP_PASSPHRASE": "load-test-backup-passphrase"}
WHITELIST = {
    "services": [
        {"service_id": "burst", "allowed_operations": ["request"],
         "allowed_names": ["*.burst.internal"]},
    ]
}  # fmt: skip


def pkiforge(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pkiforge.cli", "--home", str(home), *args],
        env=env(BACKUP_ENV),
        capture_output=True,
        text=True,
        timeout=120,
    )


def bulk_rows(database: Path) -> None:
    """100,000 certificate rows (2,000 of them revoked) in one transaction, made by SQLite
    itself: copies of one real row, each with its own serial (39 hex digits, positive) and
    fingerprint, as many as a busy year of issuance leaves behind."""
    conn = sqlite3.connect(database)
    try:
        conn.execute("PRAGMA cache_size = -262144")  # 256 MiB: the indexes stay in memory
        columns = [r[1] for r in conn.execute("PRAGMA table_info(certificates)")]
        made = {
            "serial_number": "'4' || lower(hex(randomblob(19)))",
            "fingerprint_sha256": "lower(hex(randomblob(32)))",
        }
        select = ", ".join(made.get(c, f"t.{c}") for c in columns)
        with conn:
            conn.execute(
                f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {ROWS}),"
                " t AS (SELECT * FROM certificates WHERE issuer = 'services' AND service_id"
                " IS NOT NULL LIMIT 1)"
                f" INSERT INTO certificates ({', '.join(columns)}) SELECT {select} FROM n, t"
            )
            conn.execute(
                "UPDATE certificates SET status = 'revoked' WHERE serial_number IN (SELECT"
                " serial_number FROM certificates WHERE serial_number LIKE '4%' AND"
                f" length(serial_number) = 39 LIMIT {REVOKED})"
            )
            conn.execute(
                "INSERT INTO revocations (serial_number, reason, revoked_at, revoked_by)"
                " SELECT serial_number, 'superseded', created_at, 'operator:cli'"
                " FROM certificates WHERE status = 'revoked'"
            )
        count = conn.execute("SELECT count(*) FROM certificates").fetchone()[0]
        assert count >= ROWS
    finally:
        conn.close()


class Issuer(threading.Thread):
    """Requests certificates one after another until told to stop; records when each came."""

    def __init__(self, server_url: str, tls: object) -> None:
        super().__init__(daemon=True)
        self.client = httpx.Client(base_url=server_url, verify=tls, timeout=30)  # type: ignore[arg-type]
        self.issued: list[tuple[float, str, str]] = []  # (answered at, serial, pem)
        self.failures: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            name = f"n{i}.burst.internal"
            try:
                r = self.client.post(
                    "/api/v1/certificates/request", json={"csr": make_csr(name, [name])}
                )
            except httpx.HTTPError as exc:
                self.failures.append(repr(exc))
                return
            if r.status_code == 201:
                self.issued.append(
                    (time.monotonic(), r.json()["serial"], r.json()["certificate_pem"])
                )
            else:
                self.failures.append(f"{r.status_code} {r.text[:200]}")
            i += 1
        self.client.close()


def openssl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=60)


def test_backup_under_load_restores_serves_and_verifies(tmp_path: Path) -> None:
    home = make_home(tmp_path / "home", WHITELIST, {"rate_limits": {"issuance_limit": 1_000_000}})
    cert = home.client_cert("burst", "burst.internal")
    bulk_rows(home.path / "pkiforge.db")
    old = start_server(home)
    try:
        issuer = Issuer(old.url, old.tls(cert))
        issuer.start()
        while len(issuer.issued) < 5 and issuer.is_alive():
            time.sleep(0.1)
        started = time.monotonic()
        made = pkiforge(home.path, "backup", "create", "--out", str(tmp_path / "b.pkb"),
                        "--kdf-log2-n", "14", "--json")  # fmt: skip
        finished = time.monotonic()
        assert made.returncode == 0, made.stderr
        while not any(t > finished for t, _, _ in issuer.issued) and issuer.is_alive():
            time.sleep(0.1)
        issuer.stop.set()
        issuer.join(30)
        assert not issuer.failures, issuer.failures[:3]
        # a CRL published by the old installation after the backup
        with old.client(cert) as c:
            old_crl = c.get("/api/v1/crl/services")
        assert old_crl.status_code == 200
        (tmp_path / "old.crl").write_bytes(old_crl.content)
    finally:
        old.stop()
    before = [(s, p) for t, s, p in issuer.issued if t < started]
    after = [(s, p) for t, s, p in issuer.issued if t > finished]
    assert before and after

    new_home = tmp_path / "restored"
    restored = pkiforge(new_home, "backup", "restore", str(tmp_path / "b.pkb"))
    assert restored.returncode == 0, restored.stderr
    assert pkiforge(new_home, "audit", "verify").returncode == 0
    new = Home(new_home)
    new.root.write_text(home.root.read_text())  # the same root: the server's TLS is trusted
    server = start_server(new)
    try:
        with server.client(cert) as c:
            root = c.get("/api/v1/ca/root").text
            assert root.strip() == home.root.read_text().strip()
            new.root.write_text(root)  # what openssl trusts below: the restored server's root
            chain = c.get("/api/v1/ca/services/chain").text
            (tmp_path / "chain.pem").write_text(chain)
            for serial, _ in before[:5]:
                assert c.get(f"/api/v1/crl/check/{serial}").status_code == 200
            for serial, _ in after[-3:]:
                assert c.get(f"/api/v1/crl/check/{serial}").status_code == 404
            name = "fresh.burst.internal"
            fresh = c.post("/api/v1/certificates/request", json={"csr": make_csr(name, [name])})
            assert fresh.status_code == 201, fresh.text
            served_crl = c.get("/api/v1/crl/services")
            assert served_crl.status_code == 200
        (tmp_path / "new.crl").write_bytes(served_crl.content)
    finally:
        server.stop()

    # openssl, sharing none of our code: the certificates issued before the backup and the one
    # issued by the restored server chain to the restored root through the restored intermediate
    for i, (_, pem) in enumerate([*before[:5], ("fresh", fresh.json()["certificate_pem"])]):
        leaf = tmp_path / f"leaf{i}.pem"
        leaf.write_text(pem)
        verified = openssl("verify", "-CAfile", str(new.root), "-untrusted",
                           str(tmp_path / "chain.pem"), str(leaf))  # fmt: skip
        assert verified.returncode == 0 and ": OK" in verified.stdout, verified.stderr

    def number(path: Path, form: str) -> int:
        out = openssl("crl", "-inform", form, "-in", str(path), "-noout", "-crlnumber").stdout
        return int(out.strip().split("=", 1)[1], 16)

    old_number = number(
        tmp_path / "old.crl", "PEM" if b"BEGIN" in (tmp_path / "old.crl").read_bytes() else "DER"
    )
    new_form = "PEM" if served_crl.content.startswith(b"-----") else "DER"
    assert number(tmp_path / "new.crl", new_form) > old_number
    entries = openssl(
        "crl", "-inform", new_form, "-in", str(tmp_path / "new.crl"), "-noout", "-text"
    )
    assert entries.stdout.count("Serial Number:") == REVOKED
    assert os.path.getsize(tmp_path / "b.pkb") > ROWS * 500
