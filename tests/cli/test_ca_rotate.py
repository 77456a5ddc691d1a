"""`pkiforge ca rotate` through the real entry point: online and with an offline root."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.cli.conftest import PASSPHRASE, Pkiforge, make_runner

CONFLICT = 5


def openssl(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)


def issue(run: Pkiforge, name: str) -> str:
    r = run("cert", "issue", "--cn", f"{name}.internal", "--key-out", f"{name}.key",
            "--out", f"{name}.pem", "--json")  # fmt: skip
    assert r.code == 0, r.stderr
    return str(json.loads(r.stdout)["issuer"])


def cas(run: Pkiforge) -> dict[str, dict[str, object]]:
    return {c["name"]: c for c in json.loads(run("ca", "list", "--json").stdout)}


@pytest.mark.slow
def test_rotate_online_keeps_old_leaves_valid(tmp_path: Path) -> None:
    run = make_runner(tmp_path / "D", tmp_path, {"PKIFORGE_CA_PASSPHRASE": PASSPHRASE})
    assert run("init", "--root-key-type", "p256", "--intermediate-key-type", "p256").code == 0
    assert issue(run, "old") == "services"
    r = run("ca", "rotate", "services", "--key-type", "p384", "--json")
    assert r.code == 0, r.stderr
    done = json.loads(r.stdout)
    assert done["name"] == "services.2" and done["retired"] == ["services"]
    assert done["key"] == "ECDSA P-384"
    assert issue(run, "new") == "services.2"
    listed = cas(run)
    assert listed["services"]["status"] == "retired"
    assert listed["services.2"]["status"] == "active"
    assert listed["services.2"]["subject"] == listed["services"]["subject"]

    r = run("ca", "chain", "services", "--out", "bundle.pem")
    assert r.code == 0, r.stderr
    assert (tmp_path / "bundle.pem").read_text().count("BEGIN CERTIFICATE") == 3
    for leaf in ("old", "new"):
        v = openssl("verify", "-CAfile", "bundle.pem", f"{leaf}.pem", cwd=tmp_path)
        assert v.returncode == 0, v.stdout + v.stderr

    # a second rotation: the predecessor retires, the first one still serves its leaves
    r = run("ca", "rotate", "services.2", "--json")
    assert r.code == 0, r.stderr
    assert json.loads(r.stdout)["name"] == "services.3"
    assert cas(run)["services.3"]["key"] == "ECDSA P-384"  # the key type stays as it was
    assert run("ca", "chain", "services").stdout.count("BEGIN CERTIFICATE") == 4
    r = run("crl", "generate", "--issuer", "services", "--json")
    assert r.code == 0, r.stderr

    r = run("ca", "rotate", "services.3")  # the closing message: what clients really do
    assert r.code == 0, r.stderr
    said = " ".join(r.stdout.split())
    assert "'services.4' issues for 'services.3' from now on" in said
    assert "every --bundle-interval (10 minutes by default)" in said
    assert "when they renew" not in said

    r = run("ca", "rotate", "root")
    assert r.code == CONFLICT and "the root is not rotated here" in r.stderr
    r = run("ca", "create-intermediate", "services.5")
    assert r.code != 0 and "invalid" in r.stderr


@pytest.mark.slow
def test_rotate_with_an_offline_root(tmp_path: Path) -> None:
    run = make_runner(tmp_path / "D", tmp_path, {"PKIFORGE_CA_PASSPHRASE": PASSPHRASE})
    usb = tmp_path / "usb"
    usb.mkdir()
    r = run("init", "--root-key-type", "p256", "--intermediate-key-type", "p256",
            "--root-key-out", str(usb / "root.key"))  # fmt: skip
    assert r.code == 0, r.stderr
    assert issue(run, "old") == "services"

    r = run("ca", "rotate", "services")
    assert r.code == CONFLICT and "kept offline" in r.stderr
    assert [n for n in cas(run)] == ["root", "services"]  # nothing claimed before the refusal

    r = run("ca", "rotate", "services", "--csr-out", "next.csr", "--json")
    assert r.code == 0, r.stderr
    pending = json.loads(r.stdout)["name"]
    assert pending == "services.2"
    assert issue(run, "still-old") == "services"  # the predecessor issues until the import
    # asking again hands out the waiting successor's CSR, with the same key
    r = run("ca", "rotate", "services", "--csr-out", "again.csr", "--json")
    assert r.code == 0 and json.loads(r.stdout)["name"] == "services.2"
    keys = [
        openssl("req", "-in", f, "-noout", "-pubkey", cwd=tmp_path).stdout
        for f in ("next.csr", "again.csr")
    ]
    assert keys[0] == keys[1] and "PUBLIC KEY" in keys[0]

    r = run("ca", "sign-intermediate", "--csr", "next.csr", "--name", pending,
            "--root-key", str(usb / "root.key"), "--out", "next.pem")  # fmt: skip
    assert r.code == 0, r.stderr
    r = run("ca", "import-intermediate", pending, "--cert", "next.pem", "--json")
    assert r.code == 0, r.stderr
    listed = cas(run)
    assert listed["services"]["status"] == "retired"
    assert listed["services.2"]["status"] == "active"
    assert issue(run, "new") == "services.2"
    r = run("audit", "verify")
    assert r.code == 0, r.stderr

    r = run("ca", "chain", "services", "--out", "bundle.pem")
    assert r.code == 0
    for leaf in ("old", "still-old", "new"):
        v = openssl("verify", "-CAfile", "bundle.pem", f"{leaf}.pem", cwd=tmp_path)
        assert v.returncode == 0, v.stdout + v.stderr
