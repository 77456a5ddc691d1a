"""`pkiforge cert show` prints the metadata a certificate was requested with."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from tests.ca.helpers import csr_bytes, make_pki

from .conftest import make_runner

METADATA = {"team": "[bold]payments[/bold]", "tags": ["pci"], "owner": {"tz": "UTC"}}


def test_cert_show_prints_metadata(tmp_path: Path) -> None:
    home = tmp_path / "home"
    pki = make_pki(home)
    try:
        request = pki.certificates.request_from_csr(csr_bytes("p256"), service_id="web")
        serial = pki.certificates.issue(replace(request, metadata=METADATA)).serial_hex
        plain = pki.certificates.issue(pki.certificates.request_from_csr(csr_bytes("p256-b")))
    finally:
        pki.close()
    pkiforge = make_runner(home, tmp_path)

    shown = pkiforge("cert", "show", serial, "--json")
    assert shown.code == 0, shown.stderr
    assert json.loads(shown.stdout)["metadata"] == METADATA
    listed = pkiforge("cert", "list", "--json")
    by_serial = {c["serial"]: c["metadata"] for c in json.loads(listed.stdout)}
    assert by_serial[serial] == METADATA and by_serial[plain.serial_hex] == {}

    text = pkiforge("cert", "show", serial, env={"COLUMNS": "300"})  # one row, unwrapped
    assert text.code == 0, text.stderr
    line = next(x for x in text.stdout.splitlines() if x.startswith("metadata"))
    # one line of JSON, printed as is: the brackets are not taken for Rich markup
    assert json.loads(line.removeprefix("metadata").strip()) == METADATA
    none = pkiforge("cert", "show", plain.serial_hex)
    assert any(x.split() == ["metadata", "-"] for x in none.stdout.splitlines()), none.stdout
