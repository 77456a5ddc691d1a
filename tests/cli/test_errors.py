"""Bad input gets a one-line error, a meaningful exit code, and leaves nothing written."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.cli.conftest import PASSPHRASE, Pkiforge, make_runner


def snapshot(workdir: Path) -> tuple[int, int, int]:
    """Rows in certificates, audit_log and revocations, read with sqlite3 directly."""
    with sqlite3.connect(workdir / "D" / "pkiforge.db") as db:
        return tuple(  # type: ignore[return-value]
            db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("certificates", "audit_log", "revocations")
        )


@pytest.fixture(scope="module")
def weak_csr(workdir: Path) -> Path:
    subprocess.run(
        [
            "openssl",
            "req",
            "-new",
            "-newkey",
            "rsa:1024",
            "-nodes",
            "-keyout",
            "weak.key",
            "-subj",
            "/CN=weak.internal",
            "-out",
            "weak.csr",
        ],
        cwd=workdir,
        check=True,
        capture_output=True,
    )
    return workdir / "weak.csr"


@pytest.fixture(scope="module")
def garbage(workdir: Path) -> Path:
    (workdir / "garbage.csr").write_text("-----BEGIN CERTIFICATE REQUEST-----\nnope\n")
    return workdir / "garbage.csr"


CASES = [
    (["cert", "issue", "--csr", "weak.csr", "--out", "x.pem"], 3, "RSA key of 1024 bits"),
    (["cert", "issue", "--csr", "garbage.csr", "--out", "x.pem"], 3, "CSR could not be parsed"),
    (["cert", "issue", "--csr", "missing.csr", "--out", "x.pem"], 4, "missing.csr does not exist"),
    (
        ["cert", "issue", "--cn", "bad_name!.internal", "--key-out", "k.pem", "--out", "x.pem"],
        3,
        "invalid label",
    ),
    (
        ["cert", "issue", "--cn", "*.internal", "--key-out", "k.pem", "--out", "x.pem"],
        3,
        "too broad",
    ),
    (
        [
            "cert",
            "issue",
            "--cn",
            "a.internal",
            "--san",
            "FTP:x",
            "--key-out",
            "k.pem",
            "--out",
            "x.pem",
        ],
        3,
        "unknown SAN type",
    ),
    (
        [
            "cert",
            "issue",
            "--cn",
            "a.internal",
            "--validity",
            "400d",
            "--key-out",
            "k.pem",
            "--out",
            "x.pem",
        ],
        3,
        "exceeds the 'service' profile maximum of 365 days",
    ),
    (
        ["cert", "issue", "--cn", "a.internal", "--profile", "gold", "--key-out", "k.pem"],
        3,
        "unknown profile 'gold'",
    ),
    (
        ["cert", "issue", "--cn", "a.internal", "--issuer", "nope", "--key-out", "k.pem"],
        4,
        "no CA named 'nope'",
    ),
    (
        ["cert", "issue", "--cn", "a.internal", "--issuer", "root", "--key-out", "k.pem"],
        3,
        "root CA only signs intermediates",
    ),
    (["cert", "revoke", "zz-not-hex", "--reason", "keyCompromise"], 3, "invalid serial"),
    (["cert", "revoke", "abcdef12", "--reason", "keyCompromise"], 4, "no certificate with serial"),
    (
        ["cert", "revoke", "abcdef", "--reason", "certificateHold"],
        3,
        "revocation in pkiforge is final",
    ),
    (["cert", "revoke", "abcdef", "--reason", "because"], 3, "unknown revocation reason"),
    (["crl", "generate", "--issuer", "ghost"], 4, "no CA named 'ghost'"),
    (["cert", "list", "--expiring-within", "soon"], 3, "invalid duration"),
]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    CASES,
    ids=[" ".join(c[0][:3]) + f"-{i}" for i, c in enumerate(CASES)],
)
def test_refused_with_clear_error(
    pkiforge: Pkiforge,
    workdir: Path,
    weak_csr: Path,
    garbage: Path,
    args: list[str],
    code: int,
    message: str,
) -> None:
    before = snapshot(workdir)
    r = pkiforge(*args)
    assert r.code == code, (r.code, r.stdout, r.stderr)
    assert message in r.stderr
    assert r.stderr.startswith("error: ") and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert snapshot(workdir) == before
    assert not (workdir / "x.pem").exists() and not (workdir / "k.pem").exists()


def test_existing_output_is_not_overwritten(pkiforge: Pkiforge, workdir: Path) -> None:
    (workdir / "taken.pem").write_text("keep me")
    before = snapshot(workdir)
    r = pkiforge("cert", "issue", "--cn", "b.internal", "--key-out", "kk.pem", "--out", "taken.pem")
    assert r.code == 5 and "already exists; use --force" in r.stderr
    assert (workdir / "taken.pem").read_text() == "keep me"
    assert not (workdir / "kk.pem").exists()
    assert snapshot(workdir) == before


def test_init_twice_refused(pkiforge: Pkiforge, workdir: Path) -> None:
    r = pkiforge("init")
    assert r.code == 5 and "refusing to overwrite" in r.stderr


def test_wrong_passphrase(pkiforge: Pkiforge, workdir: Path) -> None:
    before = snapshot(workdir)
    r = pkiforge(
        "cert",
        "issue",
        "--cn",
        "c.internal",
        "--key-out",
        "wp.key",
        env={"PKIFORGE_CA_PASSPHRASE": "not-the-right-passphrase"},
    )
    assert r.code == 6 and "wrong passphrase" in r.stderr
    assert "not-the-right-passphrase" not in r.stderr + r.stdout
    assert snapshot(workdir) == before


def test_read_only_commands_need_no_passphrase(workdir: Path, pkiforge: Pkiforge) -> None:
    bare = make_runner(workdir / "D", workdir)  # no PKIFORGE_CA_PASSPHRASE
    for args in (["cert", "list"], ["ca", "list"], ["audit", "verify"], ["config", "show"]):
        r = bare(*args)
        assert r.code == 0, (args, r.stderr)
    r = bare("cert", "issue", "--cn", "d.internal", "--key-out", "d.key")
    assert r.code == 3 and "no CA passphrase" in r.stderr


def test_config_show_has_no_secret(pkiforge: Pkiforge) -> None:
    r = pkiforge("config", "show", "--json")
    assert r.code == 0
    data = json.loads(r.stdout)
    assert data["ca"]["trust_domain"] == "pkiforge.internal"
    assert PASSPHRASE not in r.stdout


def test_missing_database_server_is_a_clear_error(workdir: Path) -> None:
    run = make_runner(workdir / "E", workdir)
    r = run("--database-url", "postgresql://nobody@127.0.0.1:1/none", "cert", "list")
    assert r.code == 7 and r.stderr.startswith("error: database unavailable")
    assert "port 1 failed" in r.stderr  # the operator's own store: the cause is shown


def test_database_url_option_wins_over_the_environment(workdir: Path) -> None:
    """--database-url beats PKIFORGE_DATABASE_URL, as --home beats PKIFORGE_HOME."""
    env_db = f"sqlite:///{workdir / 'from-env.db'}"
    run = make_runner(workdir / "E", workdir, {"PKIFORGE_DATABASE_URL": env_db})
    option_db = f"sqlite:///{workdir / 'from-option.db'}"
    shown = run("--database-url", option_db, "config", "show", "--json")
    assert shown.code == 0 and json.loads(shown.stdout)["database_url"] == option_db
    r = run("--database-url", "postgresql://nobody@127.0.0.1:1/none", "cert", "list")
    assert r.code == 7 and r.stderr.startswith("error: database unavailable")


def test_schema_head_constant_matches_migrations() -> None:
    from pkiforge.store.db import SCHEMA_HEAD, head_revision

    assert head_revision() == SCHEMA_HEAD
