"""`pkiforge enroll` and `agent` against a real HTTPS server: the token's profile, what enroll
writes over, what the agent checks before it renews."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.api.server import Home, Server, env, make_home, start_server

pytestmark = pytest.mark.slow

# billing may hold any number of certificates: each test enrolls it afresh
WHITELIST = {
    "services": [
        {
            "service_id": "billing",
            "allowed_operations": ["request", "renew"],
            "allowed_names": ["billing.internal"],
        }
    ]
}


@dataclass
class Pki:
    home: Home
    server: Server

    def token(self, service: str, profile: str) -> str:
        shown = self.home.cli(
            "token", "create", "--service", service, "--profile", profile, "--json"
        )
        return str(json.loads(shown.stdout)["token"])

    def enroll(self, folder: Path, token: str, *extra: str) -> subprocess.CompletedProcess[str]:
        """`pkiforge enroll` for billing.internal into `folder`/tls.pem and tls.key."""
        return pkiforge(
            "enroll", "--server", self.server.url, "--token", token,
            "--name", "billing.internal", "--service-id", "billing",
            "--cert", str(folder / "tls.pem"), "--key", str(folder / "tls.key"),
            "--ca", str(self.home.root), *extra,
        )  # fmt: skip


def pkiforge(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pkiforge.cli", *args],
        env=env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def ekus(cert: Path) -> str:
    """The extended key usage line as `openssl x509` prints it."""
    text = subprocess.run(
        ["openssl", "x509", "-in", str(cert), "-noout", "-ext", "extendedKeyUsage"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return text.splitlines()[-1].strip()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pki]:
    home = make_home(tmp_path_factory.mktemp("enroll") / "home", WHITELIST)
    server = start_server(home)
    try:
        yield Pki(home, server)
    finally:
        server.stop()


def test_enroll_without_profile_gets_the_tokens_profile(pki: Pki, tmp_path: Path) -> None:
    r = pki.enroll(tmp_path, pki.token("billing", "server"))
    assert r.returncode == 0, r.stderr
    assert ekus(tmp_path / "tls.pem") == "TLS Web Server Authentication"


def test_enroll_refuses_to_replace_a_pair_without_force(pki: Pki, tmp_path: Path) -> None:
    assert pki.enroll(tmp_path, pki.token("billing", "service")).returncode == 0
    cert, key = tmp_path / "tls.pem", tmp_path / "tls.key"
    old = cert.read_bytes(), key.read_bytes()
    token = pki.token("billing", "service")
    refused = pki.enroll(tmp_path, token)
    assert refused.returncode == 5, refused.stderr
    assert refused.stderr == f"error: {cert} already exists; use --force to replace it\n"
    assert (cert.read_bytes(), key.read_bytes()) == old

    replaced = pki.enroll(tmp_path, token, "--force")  # the refusal did not spend the token
    assert replaced.returncode == 0, replaced.stderr
    assert cert.read_bytes() != old[0] and key.read_bytes() != old[1]
    backup_cert, backup_key = tmp_path / "tls.pem.bak", tmp_path / "tls.key.bak"
    assert (backup_cert.read_bytes(), backup_key.read_bytes()) == old
    assert backup_key.stat().st_mode & 0o777 == 0o600


def test_the_files_beside_the_pair_are_all_git_sees(pki: Pki, tmp_path: Path) -> None:
    """The hidden folder of generations ignores itself: a config repository sees the files."""
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    for extra in ((), ("--force",)):
        assert pki.enroll(tmp_path, pki.token("billing", "service"), *extra).returncode == 0
    shown = subprocess.run(
        ["git", "-C", str(tmp_path), "status", "--porcelain", "--untracked-files=all"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert sorted(line[3:] for line in shown.splitlines()) == [
        "tls.key", "tls.key.bak", "tls.pem", "tls.pem.bak"
    ]  # fmt: skip


PID_FILES = [
    ("missing", None, "cannot read"),
    ("not-a-pid", "nginx\n", "does not hold a process id"),
    ("no-such-process", "99999999\n", "No such process"),
]


@pytest.mark.parametrize(
    ("content", "message"), [p[1:] for p in PID_FILES], ids=[p[0] for p in PID_FILES]
)
def test_agent_checks_the_pid_file_before_renewing(
    pki: Pki, tmp_path: Path, content: str | None, message: str
) -> None:
    assert pki.enroll(tmp_path, pki.token("billing", "service")).returncode == 0
    cert = tmp_path / "tls.pem"
    before = cert.read_bytes()
    pid_file = tmp_path / "svc.pid"
    if content is not None:
        pid_file.write_text(content)
    r = pkiforge(
        "agent", "--server", pki.server.url,
        "--cert", str(cert), "--key", str(tmp_path / "tls.key"), "--ca", str(pki.home.root),
        "--once", "--renew-before", "3650d", "--attempts", "1",
        "--signal", "HUP", "--pid-file", str(pid_file),
    )  # fmt: skip
    assert r.returncode == 3, r.stderr
    assert r.stderr.startswith("error: --pid-file ") and message in r.stderr, r.stderr
    assert cert.read_bytes() == before  # fail closed: nothing renewed


def test_a_root_fingerprint_of_the_wrong_length_is_named_so(pki: Pki, tmp_path: Path) -> None:
    """Without ca.pem, enroll fetches the root and pins it: a SHA-1-long value is refused as
    the wrong length before the server is asked, not as a mismatch (exit 8)."""
    token = pki.token("billing", "service")
    args = ["--ca", str(tmp_path / "ca.pem"), "--root-fingerprint"]
    r = pki.enroll(tmp_path, token, *args, "ab" * 20)
    assert r.returncode == 3, r.stderr
    assert "wrong length: 40 hex digits, a SHA-256 has 64" in r.stderr, r.stderr
    assert "mismatch" not in r.stderr and not (tmp_path / "ca.pem").exists()
    # the root as the CA has it (home.root may hold a bundle an earlier enroll wrote there)
    root = tmp_path / "root-only.pem"
    root.write_text(pki.home.cli("ca", "chain", "root").stdout)
    shown = subprocess.run(  # openssl's own line is taken as it is printed
        ["openssl", "x509", "-in", str(root), "-noout", "-fingerprint", "-sha256"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    r = pki.enroll(tmp_path, token, *args, shown)
    assert r.returncode == 0, r.stderr
