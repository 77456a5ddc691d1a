"""`pkiforge ca revoke` through the real entry point, and `cert revoke` refusing CA serials."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.cli.conftest import PASSPHRASE, Pkiforge, make_runner

CONFLICT = 5  # the documented exit code for a wrong state


def ca_serial(run: Pkiforge, name: str) -> str:
    r = run("ca", "show", name, "--json")
    assert r.code == 0, r.stderr
    return str(json.loads(r.stdout)["serial"])


def crl_serials(path: Path) -> set[int]:
    """The entries of a DER CRL, read by openssl."""
    text = subprocess.run(
        ["openssl", "crl", "-inform", "DER", "-in", str(path), "-noout", "-text"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return {
        int(line.split(":", 1)[1], 16)
        for line in text.splitlines()
        if line.strip().startswith("Serial Number:")
    }


@pytest.fixture
def fresh(tmp_path: Path) -> Pkiforge:
    run = make_runner(tmp_path / "D", tmp_path, {"PKIFORGE_CA_PASSPHRASE": PASSPHRASE})
    r = run("init", "--root-key-type", "p256", "--intermediate-key-type", "p256")
    assert r.code == 0, r.stderr
    r = run("ca", "create-intermediate", "agents", "--key-type", "p256")
    assert r.code == 0, r.stderr
    return run


@pytest.mark.parametrize("name", ["root", "services"])
def test_cert_revoke_refuses_a_ca_serial(pkiforge: Pkiforge, name: str) -> None:
    serial = ca_serial(pkiforge, name)
    r = pkiforge("cert", "revoke", serial, "--reason", "cACompromise")
    assert r.code == CONFLICT, r.stderr
    assert r.stderr.count("\n") == 1 and "pkiforge ca revoke" in r.stderr
    assert json.loads(pkiforge("ca", "show", name, "--json").stdout)["status"] == "active"
    assert json.loads(pkiforge("cert", "show", serial, "--json").stdout)["status"] == "active"


def test_ca_revoke_the_root_is_refused(pkiforge: Pkiforge) -> None:
    r = pkiforge("ca", "revoke", "root", "--reason", "cACompromise")
    assert r.code == CONFLICT
    assert "the root is never revoked; retire/replace it" in r.stderr
    assert r.stderr.count("\n") == 1


def test_ca_revoke_stops_issuance_and_lists_the_ca_on_the_root_crl(
    fresh: Pkiforge, tmp_path: Path
) -> None:
    agents, root = ca_serial(fresh, "agents"), ca_serial(fresh, "root")
    r = fresh("ca", "revoke", "agents", "--reason", "cACompromise")
    assert r.code == 0, r.stderr
    assert "Revoked CA 'agents'" in r.stdout and "Root CRL #" in r.stdout

    show = json.loads(fresh("ca", "show", "agents", "--json").stdout)
    assert show["status"] == "revoked"
    r = fresh("cert", "issue", "--cn", "a.internal", "--issuer", "agents", "--key-out", "a.key")
    assert r.code == CONFLICT and "CA 'agents' is revoked" in r.stderr
    assert not (tmp_path / "a.key").exists()

    again = fresh("ca", "revoke", "agents")
    assert again.code == CONFLICT and "already revoked (cACompromise" in again.stderr

    r = fresh("crl", "generate", "--issuer", "root", "--out", "root.crl")
    assert r.code == 0, r.stderr
    assert crl_serials(tmp_path / "root.crl") == {int(agents, 16)}
    assert int(root, 16) not in crl_serials(tmp_path / "root.crl")

    audit = json.loads(fresh("audit", "list", "--action", "ca.revoke", "--json").stdout)
    assert [(e["subject"], e["details"]["reason"]) for e in audit] == [("agents", "cACompromise")]

    # the default issuer: said so, and requests that name no issuer are refused
    r = fresh("ca", "revoke", "services", "--json")
    assert r.code == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["default_issuer"] is True and out["status"] == "revoked"
    assert out["reason"] == "unspecified"
    r = fresh("cert", "issue", "--cn", "a.internal", "--key-out", "a.key")
    assert r.code == CONFLICT and "default issuer" in r.stderr


def test_ca_revoke_with_the_root_key_offline(tmp_path: Path) -> None:
    run = make_runner(tmp_path / "D", tmp_path, {"PKIFORGE_CA_PASSPHRASE": PASSPHRASE})
    usb = tmp_path / "usb" / "root.key"
    usb.parent.mkdir()
    r = run(
        "init", "--root-key-type", "p256", "--intermediate-key-type", "p256",
        "--root-key-out", str(usb),
    )  # fmt: skip
    assert r.code == 0, r.stderr
    services = ca_serial(run, "services")

    r = run("ca", "revoke", "services", "--reason", "cACompromise")
    assert r.code == 0, r.stderr  # recorded: the CRL waits for the root key
    assert "crl generate --issuer root --root-key" in r.stderr
    assert json.loads(run("ca", "show", "services", "--json").stdout)["status"] == "revoked"

    r = run("crl", "generate", "--issuer", "root", "--root-key", str(usb), "--out", "root.crl")
    assert r.code == 0, r.stderr
    assert crl_serials(tmp_path / "root.crl") == {int(services, 16)}


def test_ca_help_lists_revoke(pkiforge: Pkiforge) -> None:
    r = pkiforge("ca", "--help")
    assert r.code == 0 and "revoke" in r.stdout
    r = pkiforge("ca", "revoke", "--help")
    assert r.code == 0 and "--reason" in r.stdout and "--root-key" in r.stdout
