"""A CRL of 100,000 entries, built from the store and read back by openssl."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest
from cryptography import x509

from pkiforge.clock import FixedClock
from pkiforge.wiring import Pki

from .helpers import NOW, csr_bytes, make_pki, openssl

pytestmark = pytest.mark.slow
LISTED = 100_000
EXPIRED = 100  # revoked but expired at the CRL's thisUpdate: RFC 5280 §3.3 lets them go
REASONS = ("keyCompromise", "superseded", "cessationOfOperation", "unspecified")


def bulk_revoked(database: Path) -> list[int]:
    """LISTED + EXPIRED revoked copies of the one issued certificate, each with its own serial,
    made by SQLite itself; returns the serials that must be listed."""
    conn = sqlite3.connect(database)
    try:
        conn.execute("PRAGMA synchronous = OFF")  # test data: nothing to keep if it crashes
        columns = [r[1] for r in conn.execute("PRAGMA table_info(certificates)")]
        made = {
            "serial_number": "'4' || lower(hex(randomblob(19)))",
            "fingerprint_sha256": "lower(hex(randomblob(32)))",
            "status": "'revoked'",
            # the expired ones end when they were issued, which is the CRL's thisUpdate
            "not_after": f"CASE WHEN n.i <= {EXPIRED} THEN t.created_at ELSE t.not_after END",
        }
        select = ", ".join(made.get(c, f"t.{c}") for c in columns)
        reason = " ".join(f"WHEN {i} THEN '{r}'" for i, r in enumerate(REASONS))
        with conn:
            conn.execute(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n"
                f" WHERE i < {LISTED + EXPIRED}), t AS (SELECT * FROM certificates"
                " WHERE service_id = 'web' LIMIT 1)"
                f" INSERT INTO certificates ({', '.join(columns)}) SELECT {select} FROM n, t"
            )
            conn.execute(
                "INSERT INTO revocations (serial_number, reason, revoked_at, revoked_by)"
                f" SELECT serial_number, CASE abs(random()) % {len(REASONS)} {reason} END,"
                " created_at, 'operator:cli' FROM certificates WHERE status = 'revoked'"
            )
        rows = conn.execute(
            "SELECT c.serial_number, c.not_after > c.created_at FROM certificates c"
            " JOIN revocations r ON r.serial_number = c.serial_number"
        ).fetchall()
    finally:
        conn.close()
    assert len(rows) == LISTED + EXPIRED
    listed = [int(s, 16) for s, unexpired in rows if unexpired]
    assert len(listed) == LISTED
    return listed


@pytest.fixture
def big(tmp_path: Path) -> tuple[Pki, list[int]]:
    pki = make_pki(tmp_path / "home", clock=FixedClock(NOW))
    request = pki.certificates.request_from_csr(csr_bytes("p256"), service_id="web")
    pki.certificates.issue(request)
    return pki, bulk_revoked(tmp_path / "home" / "pkiforge.db")


def test_a_crl_of_100000_entries_lists_them_all_for_openssl(
    big: tuple[Pki, list[int]], tmp_path: Path
) -> None:
    pki, listed = big
    try:
        record = pki.revocation.generate_crl("services")
    finally:
        pki.close()
    path = tmp_path / "services.crl"
    path.write_bytes(record.der)
    shown = openssl("crl", "-inform", "DER", "-in", str(path), "-noout", "-text")
    assert shown.returncode == 0, shown.stderr
    serials = [int(s, 16) for s in re.findall(r"Serial Number: ([0-9A-F]+)", shown.stdout)]
    assert len(serials) == LISTED
    assert set(serials) == set(listed)  # every one, and none of the expired
    # entries keep their reasons (unspecified is left out, RFC 5280 §5.3.1)
    reasons = re.findall(r"X509v3 CRL Reason Code:\s*\n\s*(.+)", shown.stdout)
    assert 0 < len(reasons) < LISTED
    assert {r.strip() for r in reasons} == {
        "Key Compromise",
        "Superseded",
        "Cessation Of Operation",
    }
    crl = x509.load_der_x509_crl(record.der)
    assert len(crl) == LISTED
