"""Messages that say what is wrong and what to do: home, passphrase, token, config, fingerprint."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.cli.conftest import PASSPHRASE, Pkiforge, make_runner


def test_missing_home_names_the_path_and_init(workdir: Path) -> None:
    run = make_runner(workdir / "no-such-home", workdir)
    for args in (["cert", "list"], ["ca", "list"], ["audit", "verify"]):
        r = run(*args)
        assert r.code == 4, (args, r.stderr)
        assert str((workdir / "no-such-home").resolve()) in r.stderr
        assert "`pkiforge init` creates it" in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
    assert not (workdir / "no-such-home").exists()


# one for each group of read commands: every one of them opens the store through CliState.pki
READ_COMMANDS = [
    ["cert", "list"],
    ["ca", "list"],
    ["crl", "show", "--issuer", "root"],
    ["keys", "list"],
]


def test_a_folder_without_a_ca_is_not_taken_for_an_empty_one(workdir: Path) -> None:
    """Read commands in a folder that exists but holds no pkiforge database say so, and create
    nothing (they used to create an empty database and list nothing, exit 0)."""
    folder = workdir / "just-a-folder"
    folder.mkdir()
    run = make_runner(folder, workdir)
    for args in READ_COMMANDS:
        r = run(*args)
        assert r.code == 4, (args, r.stderr)
        assert r.stderr.startswith(f"error: no pkiforge data directory at {folder.resolve()}")
        assert "`pkiforge init`" in r.stderr and "--home" in r.stderr, r.stderr
        assert list(folder.iterdir()) == [], args


def test_wrong_passphrase_names_the_ca_and_never_the_passphrase(pkiforge: Pkiforge) -> None:
    wrong = "not-the-right-passphrase-either"
    r = pkiforge(
        "cert",
        "issue",
        "--cn",
        "wrong.internal",
        "--key-out",
        "wrong.key",
        env={"PKIFORGE_CA_PASSPHRASE": wrong},
    )
    assert r.code == 6, r.stderr
    assert "CA 'services'" in r.stderr and "wrong passphrase" in r.stderr
    assert wrong not in r.stderr + r.stdout and PASSPHRASE not in r.stderr + r.stdout


def test_enroll_refuses_a_malformed_token_before_anything_else(workdir: Path) -> None:
    run = make_runner(workdir / "unused", workdir)
    out = workdir / "enroll-garbage"
    out.mkdir()
    r = run(
        "enroll",
        "--server",
        "https://127.0.0.1:1",
        "--token",
        "garbage",
        "--name",
        "svc.internal",
        "--cert",
        str(out / "svc.pem"),
        "--key",
        str(out / "svc.key"),
        "--root-fingerprint",
        "00" * 32,
    )
    assert r.code == 3, r.stderr
    assert "malformed enrollment token" in r.stderr and "client certificate" not in r.stderr
    assert list(out.iterdir()) == []


def test_config_errors_name_the_file_and_each_key(workdir: Path) -> None:
    home = workdir / "badconfig"
    home.mkdir()
    config = home / "config.yaml"
    config.write_text("ca:\n  root_validity: forever\n  kdf_log2_n: 3\nserver:\n  bogus: 1\n")
    r = make_runner(home, workdir)("config", "show")
    assert r.code == 3, r.stderr
    lines = r.stderr.strip().splitlines()
    assert lines[0] == f"error: invalid configuration in {config}:"
    problems = sorted(line.strip() for line in lines[1:])
    assert [p.split(":")[0] for p in problems] == [
        "ca.kdf_log2_n",
        "ca.root_validity",
        "server.bogus",
    ]
    assert "invalid duration 'forever'" in problems[1]
    assert problems[2] == "server.bogus: unknown setting"
    assert "http" not in r.stderr and "pydantic" not in r.stderr and "Traceback" not in r.stderr


def test_ca_show_prints_the_root_fingerprint(pkiforge: Pkiforge, workdir: Path) -> None:
    root = workdir / "root-for-fingerprint.pem"
    assert pkiforge("ca", "chain", "root", "--out", str(root)).code == 0
    checked = subprocess.run(
        ["openssl", "x509", "-in", str(root), "-noout", "-fingerprint", "-sha256"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    expected = checked.strip().split("=", 1)[1].replace(":", "").lower()

    r = pkiforge("ca", "show", "root")
    assert r.code == 0, r.stderr
    assert ["fingerprint_sha256", expected] in [line.split() for line in r.stdout.splitlines()]
    r = pkiforge("ca", "show", "root", "--json")
    assert json.loads(r.stdout)["fingerprint_sha256"] == expected


def test_agent_refuses_missing_files_at_start_not_when_a_renewal_is_due(workdir: Path) -> None:
    run = make_runner(workdir / "unused", workdir)
    folder = workdir / "agent-files"
    folder.mkdir()
    cert, key = folder / "tls.pem", folder / "tls.key"
    common = ["agent", "--server", "https://127.0.0.1:1", "--once", "--renew-before", "1s"]
    r = run(*common, "--cert", str(cert), "--key", str(key))
    assert r.code == 4 and f"--cert {cert} does not exist" in r.stderr, r.stderr
    cert.write_text("x")
    key.write_text("x")
    r = run(*common, "--cert", str(cert), "--key", str(key))
    assert r.code == 4, r.stderr
    assert f"--ca {folder / 'ca.pem'} does not exist (the default: ca.pem beside --cert)" in (
        r.stderr
    )
    r = run(*common, "--cert", str(cert), "--key", str(key), "--ca", str(folder / "root.pem"))
    assert r.code == 4 and "the default" not in r.stderr, r.stderr


def test_a_missing_anchor_file_is_not_found(pkiforge: Pkiforge) -> None:
    r = pkiforge("audit", "verify", "--anchor", "anchor-that-was-never-written.json")
    assert r.code == 4, r.stderr
    assert "anchor anchor-that-was-never-written.json does not exist" in r.stderr


def test_cert_revoke_says_when_the_revocation_is_published(pkiforge: Pkiforge) -> None:
    """The scheduler's crl-refresh job publishes a revocation by itself; `crl generate` at
    once. With the scheduler off, nothing does until a CRL is signed."""
    serials = []
    for cn in ("gone-a.internal", "gone-b.internal"):
        made = pkiforge("cert", "issue", "--cn", cn, "--key-out", f"{cn}.key", "--json")
        assert made.code == 0, made.stderr
        serials.append(str(json.loads(made.stdout)["serial"]))
    r = pkiforge("cert", "revoke", serials[0])
    assert r.code == 0, r.stderr
    said = " ".join(r.stdout.split())
    assert "signs the issuer's next CRL with it within about 75s" in said, said
    assert "`pkiforge crl generate --issuer services` publishes it now" in said
    off = pkiforge("cert", "revoke", serials[1], env={"PKIFORGE_SCHEDULER__ENABLED": "false"})
    assert off.code == 0, off.stderr
    assert "The scheduler is off" in " ".join(off.stdout.split())
