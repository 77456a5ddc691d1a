"""docs/operations.md, "Signing the root's CRL": the runbook's commands, run as written (the
medium's mount point and the server's address replaced) against a running server with the
root key offline; openssl checks the CRL, curl fetches what the server publishes."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tests.api.server import Home, Server, env, start_server

DOCS = Path(__file__).parents[2] / "docs" / "operations.md"


def runbook() -> str:
    """The first sh block of the section."""
    text = DOCS.read_text()
    section = text[text.index("## Signing the root's CRL") :]
    match = re.search(r"```sh\n(.*?)```", section, re.S)
    assert match is not None
    return match.group(1)


def ceremony(server: Server, usb: Path, workdir: Path) -> subprocess.CompletedProcess[str]:
    script = runbook().replace("/media/usb", str(usb))
    script = script.replace("https://pki.internal:8443", server.url)
    workdir.mkdir()
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=workdir,
        env=env({"PKIFORGE_HOME": str(server.home.path), "PATH": path}),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_runbook_names_the_commands_it_is_tested_with() -> None:
    commands = [line.split()[:3] for line in runbook().splitlines() if line.strip()]
    assert ["pkiforge", "crl", "generate"] in commands
    assert ["openssl", "crl", "-inform"] in commands
    assert any(c[0] == "curl" for c in commands) and any(c[0] == "cmp" for c in commands)


@pytest.mark.slow  # a server, and the ceremony twice
def test_the_root_crl_ceremony_runs_as_written(tmp_path: Path) -> None:
    usb = tmp_path / "usb"
    usb.mkdir()
    home = Home(tmp_path / "home")
    home.path.mkdir()
    (home.path / "config.yaml").write_text(yaml.safe_dump({}))
    (home.path / "service_whitelist.yaml").write_text(yaml.safe_dump({"services": []}))
    home.cli("init", "--root-key-type", "p256", "--intermediate-key-type", "p256",
             "--root-key-out", str(usb / "root.key"))  # fmt: skip
    home.root.write_text(home.cli("ca", "chain", "root").stdout)
    assert not (home.path / "ca" / "root" / "key.pem").exists()
    first = json.loads(home.cli("crl", "show", "--issuer", "root", "--json").stdout)
    assert first["crl_number"] == 1  # init signed it while the key was at hand
    server = start_server(home)
    try:
        numbers = []
        for run in ("first", "second"):
            proc = ceremony(server, usb, tmp_path / run)
            assert proc.returncode == 0, proc.stdout + proc.stderr
            assert "verify OK" in proc.stdout + proc.stderr
            crl = x509.load_der_x509_crl((tmp_path / run / "root.crl").read_bytes())
            assert crl.next_update_utc is not None
            lifetime = crl.next_update_utc - crl.last_update_utc
            assert lifetime == dt.timedelta(days=180)  # crl.root_next_update
            number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
            assert f"crlNumber=0x{number:02X}" in proc.stdout  # openssl's own reading
            numbers.append(number)
            # what the server served is the CRL just signed (cmp ran in the block)
            served = (tmp_path / run / "served.crl").read_bytes()
            assert served == crl.public_bytes(Encoding.DER)
        assert numbers[1] == numbers[0] + 1
    finally:
        server.stop()
