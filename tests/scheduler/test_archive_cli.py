"""`cert list` leaves archived certificates out, `cert list --archived` shows them: the tidy job
run by the CLI on certificates that expired long before today (their CA's clock was in the
past), as an operator sees them."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest

from pkiforge.clock import FixedClock
from tests.api.server import env
from tests.ca.helpers import NOW, PASSPHRASE, csr_bytes, make_pki


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pkiforge.cli", "--home", str(home), *args],
        env=env({"PKIFORGE_CA_PASSPHRASE": PASSPHRASE.decode()}),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_archived_certificates_leave_cert_list_and_stay_listable(tmp_path: Path) -> None:
    home = tmp_path / "home"
    pki = make_pki(home, clock=FixedClock(NOW))  # NOW is long past: these expire at once
    try:
        request = pki.certificates.request_from_csr(
            csr_bytes("p256"), service_id="web", validity=dt.timedelta(days=10)
        )
        serial = pki.certificates.issue(request).serial_hex
    finally:
        pki.close()
    before = json.loads(cli(home, "cert", "list", "--service", "web", "--json").stdout)
    assert [c["serial"] for c in before] == [serial]
    tidy = cli(home, "scheduler", "run", "--once", "--job", "tidy", "--json")
    assert tidy.returncode == 0, tidy.stderr
    assert json.loads(tidy.stdout)[0]["result"]["archived"] == 1
    assert json.loads(cli(home, "cert", "list", "--service", "web", "--json").stdout) == []
    archived = json.loads(
        cli(home, "cert", "list", "--service", "web", "--archived", "--json").stdout
    )
    assert [c["serial"] for c in archived] == [serial]
    shown = cli(home, "cert", "show", serial, "--json")
    assert shown.returncode == 0 and json.loads(shown.stdout)["serial"] == serial
