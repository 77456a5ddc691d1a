"""`crl generate --delta`: refused while crl.delta is off, else a delta CRL file that openssl
reads, naming its base."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.cli.conftest import PASSPHRASE, make_runner

CONFLICT = 5


def test_crl_generate_delta(tmp_path: Path) -> None:
    off = make_runner(tmp_path / "D", tmp_path, {"PKIFORGE_CA_PASSPHRASE": PASSPHRASE})
    r = off("init", "--root-key-type", "p256", "--intermediate-key-type", "p256")
    assert r.code == 0, r.stderr
    r = off("crl", "generate", "--issuer", "services", "--delta", "--out", "d.crl")
    assert r.code == CONFLICT, r.stderr
    assert "crl.delta" in r.stderr

    run = make_runner(
        tmp_path / "D", tmp_path, {"PKIFORGE_CA_PASSPHRASE": PASSPHRASE, "PKIFORGE_CRL__DELTA": "1"}
    )
    r = run("crl", "generate", "--issuer", "services", "--json")
    assert r.code == 0, r.stderr
    base = json.loads(r.stdout)["crl_number"]
    r = run("crl", "generate", "--issuer", "services", "--delta", "--out", "d.crl")
    assert r.code == 0, r.stderr
    assert r.stdout.startswith("Delta CRL #")
    shown = subprocess.run(
        ["openssl", "crl", "-inform", "DER", "-in", str(tmp_path / "d.crl"), "-noout", "-text"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert shown.returncode == 0, shown.stderr
    after = shown.stdout.split("X509v3 Delta CRL Indicator: critical")[1].split("\n")[1]
    assert int(after.strip(), 16) == base
