"""`pkiforge backup create|verify|restore` through the real entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.conftest import PASSPHRASE, Pkiforge, make_runner

pytestmark = pytest.mark.slow  # a dozen CLI processes
BACKUP_PASS = "backup-cli-passphrase-0123"


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> tuple[Pkiforge, Path]:
    work = tmp_path_factory.mktemp("backup-cli")
    run = make_runner(work / "home", work, {"PKIFORGE_CA_PASSPHRASE": PASSPHRASE})
    assert run("init", "--root-key-type", "p256", "--intermediate-key-type", "p256").code == 0
    issued = run("cert", "issue", "--cn", "api.example.internal", "--service", "api",
                 "--key-out", str(work / "api.key"), "--out", str(work / "api.pem"))  # fmt: skip
    assert issued.code == 0, issued.stderr
    return run, work


def test_create_verify_restore(cli: tuple[Pkiforge, Path]) -> None:
    run, work = cli
    env = {"PKIFORGE_BACKUP_PASSPHRASE": BACKUP_PASS}
    made = run("backup", "create", "--out", str(work / "a.pkb"), "--kdf-log2-n", "14", "--json",
               env=env)  # fmt: skip
    assert made.code == 0, made.stderr
    manifest = json.loads(made.stdout)["manifest"]
    assert manifest["counts"]["certificates"] == 3
    assert manifest["includes_ca_passphrase"] is False

    checked = run("backup", "verify", str(work / "a.pkb"), env=env)
    assert checked.code == 0, checked.stderr
    assert "backup intact" in checked.stdout and "home/ca/services/key.pem" in checked.stdout
    as_json = json.loads(run("backup", "verify", str(work / "a.pkb"), "--json", env=env).stdout)
    assert as_json["ok"] is True and as_json["problems"] == []

    wrong = run("backup", "verify", str(work / "a.pkb"),
                env={"PKIFORGE_BACKUP_PASSPHRASE": "another-passphrase-0123"})  # fmt: skip
    assert wrong.code == 8 and "wrong passphrase, or the file was altered" in wrong.stderr

    new_home = work / "restored"
    restored = run("backup", "restore", str(work / "a.pkb"), "--home", str(new_home), env=env)
    assert restored.code == 0, restored.stderr
    assert "unknown to the restored store" in restored.stderr
    assert "next CRL numbers" in restored.stdout
    run_restored = make_runner(new_home, work, {"PKIFORGE_CA_PASSPHRASE": PASSPHRASE})
    audit = run_restored("audit", "verify")
    assert audit.code == 0 and "audit chain intact" in audit.stdout
    listed = run_restored("audit", "list", "--action", "backup.restore", "--json")
    assert len(json.loads(listed.stdout)) == 1

    again = run("backup", "restore", str(work / "a.pkb"), "--home", str(new_home), env=env)
    assert again.code == 5 and "already holds a database" in again.stderr


def test_key_file_and_refusals(cli: tuple[Pkiforge, Path]) -> None:
    run, work = cli
    key = work / "backup.key"
    key.write_text("ab" * 32 + "\n")
    made = run("backup", "create", "--out", str(work / "k.pkb"), "--backup-key-file", str(key))
    assert made.code == 0, made.stderr
    assert run("backup", "verify", str(work / "k.pkb"), "--backup-key-file", str(key)).code == 0

    both = run("backup", "verify", str(work / "k.pkb"), "--backup-key-file", str(key),
               "--backup-passphrase-file", str(key))  # fmt: skip
    assert both.code == 3 and "not both" in both.stderr

    # no passphrase from anywhere, and no terminal to ask on: refused, nothing written
    none = run("backup", "create", "--out", str(work / "n.pkb"))
    assert none.code == 3 and "no backup passphrase" in none.stderr
    assert not (work / "n.pkb").exists()

    exists = run("backup", "create", "--out", str(work / "k.pkb"), "--backup-key-file", str(key))
    assert exists.code == 5 and "already exists" in exists.stderr
