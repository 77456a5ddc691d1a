"""Every command with `--format` writes what it says, whatever `--out` is called; openssl checks."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.cli.conftest import Pkiforge


def openssl_reads(kind: str, path: Path, inform: str) -> bool:
    """True if `openssl crl|x509 -inform PEM|DER` parses the file (it shares none of our code)."""
    done = subprocess.run(
        ["openssl", kind, "-in", str(path), "-inform", inform, "-noout"],
        capture_output=True,
        text=True,
    )
    return done.returncode == 0


CRL_CASES = [
    # (--format or None, --out name, what openssl must read it as)
    ("pem", "x.crl", "PEM"),
    ("pem", "x.der", "PEM"),
    ("der", "x.pem", "DER"),
    (None, "x.crl", "DER"),
    (None, "x.crl.pem", "PEM"),
]


@pytest.mark.parametrize(
    ("fmt", "name", "inform"), CRL_CASES, ids=[f"{c[0]}-{c[1]}" for c in CRL_CASES]
)
def test_crl_generate_writes_the_format_asked_for(
    pkiforge: Pkiforge, tmp_path: Path, fmt: str | None, name: str, inform: str
) -> None:
    out = tmp_path / name
    args = ["crl", "generate", "--issuer", "services", "--out", str(out)]
    r = pkiforge(*args, *(["--format", fmt] if fmt else []))
    assert r.code == 0, r.stderr
    assert openssl_reads("crl", out, inform), f"{name} with --format {fmt} is not {inform}"
    other = "DER" if inform == "PEM" else "PEM"
    assert not openssl_reads("crl", out, other)


def test_crl_generate_to_stdout_follows_format(pkiforge: Pkiforge, tmp_path: Path) -> None:
    r = pkiforge("crl", "generate", "--issuer", "services", "--format", "pem")
    assert r.code == 0 and r.stdout.startswith("-----BEGIN X509 CRL-----"), r.stderr


def test_cert_export_writes_the_format_asked_for(pkiforge: Pkiforge, tmp_path: Path) -> None:
    issued = pkiforge(
        "cert", "issue", "--cn", "e.internal", "--key-out", str(tmp_path / "k"), "--json"
    )
    assert issued.code == 0, issued.stderr
    serial = json.loads(issued.stdout)["serial"]
    for fmt, name, inform in [("pem", "c.der", "PEM"), ("der", "c.pem", "DER")]:
        out = tmp_path / name
        r = pkiforge("cert", "export", serial, "--format", fmt, "--out", str(out))
        assert r.code == 0, r.stderr
        assert openssl_reads("x509", out, inform), f"{name} with --format {fmt} is not {inform}"
