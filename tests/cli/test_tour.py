"""The commands issue 2 says must work exactly as written, checked with openssl."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.cli.conftest import Pkiforge


def openssl(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)


@pytest.fixture(scope="module")
def service_csr(workdir: Path) -> Path:
    proc = openssl(
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "svc.key",
        "-subj",
        "/CN=billing.internal",
        "-addext",
        "subjectAltName=DNS:billing.internal,DNS:billing",
        "-out",
        "svc.csr",
        cwd=workdir,
    )
    assert proc.returncode == 0, proc.stderr
    return workdir / "svc.csr"


def split_chain(workdir: Path) -> None:
    """chain.pem is intermediate then root: write root.pem for -CAfile."""
    pems = (workdir / "chain.pem").read_text().split("-----END CERTIFICATE-----")
    blocks = [p.strip() + "\n-----END CERTIFICATE-----\n" for p in pems if "BEGIN" in p]
    assert len(blocks) == 2
    (workdir / "root.pem").write_text(blocks[1])


def test_tour(pkiforge: Pkiforge, workdir: Path, service_csr: Path) -> None:
    r = pkiforge("cert", "issue", "--csr", "svc.csr", "--out", "svc.pem")
    assert r.code == 0, r.stderr
    r = pkiforge(
        "cert",
        "issue",
        "--cn",
        "api.internal",
        "--san",
        "DNS:api.internal",
        "--san",
        "IP:10.0.0.5",
        "--key-out",
        "api.key",
        "--out",
        "api.pem",
    )
    assert r.code == 0, r.stderr
    assert (workdir / "api.key").stat().st_mode & 0o777 == 0o600

    r = pkiforge("ca", "chain", "services")
    assert r.code == 0, r.stderr
    (workdir / "chain.pem").write_text(r.stdout)
    split_chain(workdir)

    for leaf in ("svc.pem", "api.pem"):
        v = openssl("verify", "-CAfile", "root.pem", "-untrusted", "chain.pem", leaf, cwd=workdir)
        assert v.returncode == 0 and f"{leaf}: OK" in v.stdout, v.stdout + v.stderr

    # the key written by --key-out belongs to the certificate
    mod_cert = openssl("x509", "-in", "api.pem", "-noout", "-pubkey", cwd=workdir).stdout
    mod_key = openssl("pkey", "-in", "api.key", "-pubout", cwd=workdir).stdout
    assert mod_cert == mod_key and "PUBLIC KEY" in mod_cert

    serial = (
        openssl("x509", "-in", "api.pem", "-noout", "-serial", cwd=workdir)
        .stdout.strip()
        .split("=")[1]
    )
    r = pkiforge("cert", "revoke", serial, "--reason", "keyCompromise")
    assert r.code == 0, r.stderr
    r = pkiforge("crl", "generate", "--issuer", "services", "--out", "services.crl")
    assert r.code == 0, r.stderr
    crl_text = openssl(
        "crl", "-inform", "DER", "-in", "services.crl", "-noout", "-text", cwd=workdir
    ).stdout
    assert "Key Compromise" in crl_text and serial.lstrip("0").upper() in crl_text.upper()

    # the revoked leaf fails a CRL check; the other one still passes
    openssl("crl", "-inform", "DER", "-in", "services.crl", "-out", "services.crl.pem", cwd=workdir)
    bad = openssl(
        "verify",
        "-crl_check",
        "-CAfile",
        "root.pem",
        "-untrusted",
        "chain.pem",
        "-CRLfile",
        "services.crl.pem",
        "api.pem",
        cwd=workdir,
    )
    assert bad.returncode != 0 and "certificate revoked" in bad.stdout + bad.stderr
    good = openssl(
        "verify",
        "-crl_check",
        "-CAfile",
        "root.pem",
        "-untrusted",
        "chain.pem",
        "-CRLfile",
        "services.crl.pem",
        "svc.pem",
        cwd=workdir,
    )
    assert good.returncode == 0, good.stdout + good.stderr

    r = pkiforge("cert", "list", "--json")
    assert r.code == 0, r.stderr
    listed = {c["serial"]: c for c in json.loads(r.stdout)}
    api = listed[serial.lower().lstrip("0")]
    assert api["status"] == "revoked"
    assert api["revocation"]["reason"] == "keyCompromise"
    assert "URI:spiffe://pkiforge.internal/api.internal" in api["names"]
    assert any(
        c["common_name"] == "billing.internal" and c["status"] == "active" for c in listed.values()
    )

    r = pkiforge("audit", "verify")
    assert r.code == 0 and "audit chain intact" in r.stdout, r.stdout + r.stderr
