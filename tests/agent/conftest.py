"""A real pkiforge server in a subprocess (p256 CA, a 1-minute profile) and helpers around it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from pkiforge.client import Identity, PkiClient

ROOT = Path(__file__).parents[2]
CLI = [sys.executable, "-m", "pkiforge.cli"]
PASSPHRASE = "agent-test-passphrase-0123456789"
CONFIG = """\
profiles:
  server: {ekus: [serverAuth], default_validity: 90d, max_validity: 397d}
  service: {ekus: [serverAuth, clientAuth], default_validity: 365d, max_validity: 365d}
  short: {ekus: [serverAuth, clientAuth], default_validity: 1m, max_validity: 10m}
"""
WHITELIST = """\
patterns:
  - pattern: "svc-*"
    allowed_operations: [request, renew, revoke, download, register, update, discover, list]
    allowed_names: ["localhost", "IP:127.0.0.1/32"]
    profiles: [short]
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env() -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PKIFORGE_")}
    return {**clean, "PKIFORGE_CA_PASSPHRASE": PASSPHRASE}


def cli(home: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "pkiforge.cli", "--home", str(home), *args],
        cwd=ROOT,
        env=env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def wait_for(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@dataclass
class PkiServer:
    """`pkiforge serve` on a fixed port; can be stopped and started again."""

    home: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca(self) -> Path:
        return self.home / "server" / "client-cas.pem"

    def start(self) -> None:
        log = open(self.home / "serve.log", "ab")  # noqa: SIM115 - the child owns it
        self.proc = subprocess.Popen(
            [*CLI, "--home", str(self.home), "serve", "--port", str(self.port)],
            cwd=ROOT,
            env=env(),
            stdout=log,
            stderr=log,
        )
        wait_for(self._up, 30, "the pkiforge server")

    def _up(self) -> bool:
        assert self.proc is not None and self.proc.poll() is None, "pkiforge serve exited"
        try:
            return httpx.get(f"{self.url}/healthz", verify=False, timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)
        self.proc = None

    def enroll(self, service_id: str, folder: Path) -> Identity:
        """A fresh short-lived certificate for `service_id` through a one-time token."""
        token = json.loads(cli(self.home, "token", "create", "--service", service_id,
                               "--profile", "short", "--json"))["token"]  # fmt: skip
        identity = Identity.in_dir(folder)
        with PkiClient(self.url, verify=self.ca) as pki:
            pki.enroll(token, ["localhost", "127.0.0.1"], identity, service_id=service_id,
                       profile="short")  # fmt: skip
        return identity


@pytest.fixture(scope="module")
def pki_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PkiServer]:
    home = tmp_path_factory.mktemp("pki")
    (home / "config.yaml").write_text(CONFIG)
    (home / "service_whitelist.yaml").write_text(WHITELIST)
    cli(home, "init", "--root-key-type", "p256", "--intermediate-key-type", "p256")
    server = PkiServer(home)
    server.start()
    yield server
    server.stop()


def agent_command(server: PkiServer, identity: Identity, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "pkiforge.cli", "agent", "--server", server.url,
        "--cert", str(identity.cert), "--key", str(identity.key), "--ca", str(identity.ca),
        "--jitter", "0", "--check-interval", "1s", *extra,
    ]  # fmt: skip
