"""`pkiforge enroll` against a real HTTPS server: the token's profile, what it writes over."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.api.helpers import WHITELIST
from tests.api.server import Home, Server, env, make_home, start_server

pytestmark = pytest.mark.slow


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
