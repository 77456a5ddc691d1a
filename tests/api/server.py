"""Real servers for the HTTPS tests: `pkiforge init` + `pkiforge serve` in subprocesses."""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

PASSPHRASE = "https-test-passphrase-0123456789"


def env(extra: dict[str, str] | None = None) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("PKIFORGE_")}
    out["PKIFORGE_CA_PASSPHRASE"] = PASSPHRASE
    out["PKIFORGE_CA__KDF_LOG2_N"] = "14"  # the cheapest allowed scrypt cost: fast start-up
    out.update(extra or {})
    return out


@dataclass
class Home:
    """A data directory with a CA (P-256 for speed), a config and a whitelist."""

    path: Path
    database_url: str | None = None

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        db = ["--database-url", self.database_url] if self.database_url else []
        proc = subprocess.run(
            [sys.executable, "-m", "pkiforge.cli", "--home", str(self.path), *db, *args],
            env=env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"pkiforge {' '.join(args)}: {proc.stderr}")
        return proc

    @property
    def root(self) -> Path:
        return self.path / "root.pem"

    def client_cert(self, service: str, cn: str) -> tuple[str, str]:
        """Issue a client certificate with the CLI; returns (cert path, key path)."""
        cert, key = self.path / f"{service}.pem", self.path / f"{service}.key"
        self.cli(
            "cert", "issue", "--cn", cn, "--service", service, "--key-out", str(key),
            "--out", str(cert), "--force",
        )  # fmt: skip
        return str(cert), str(key)


def make_home(
    path: Path,
    whitelist: dict[str, Any],
    config: dict[str, Any] | None = None,
    database_url: str | None = None,
) -> Home:
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.yaml").write_text(yaml.safe_dump(config or {}))
    (path / "service_whitelist.yaml").write_text(yaml.safe_dump(whitelist))
    home = Home(path, database_url)
    home.cli("init", "--root-key-type", "p256", "--intermediate-key-type", "p256")
    home.root.write_text(home.cli("ca", "chain", "root").stdout)
    return home


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """One `pkiforge serve` process."""

    home: Home
    port: int
    proc: subprocess.Popen[bytes]
    log: Path
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def tls(self, cert: tuple[str, str] | None = None) -> ssl.SSLContext:
        """Trust this CA's root; present `cert` (cert path, key path) if given."""
        ctx = ssl.create_default_context(cafile=str(self.home.root))
        if cert is not None:
            ctx.load_cert_chain(*cert)
        return ctx

    def client(self, cert: tuple[str, str] | None = None, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, verify=self.tls(cert), timeout=20, **kwargs)

    def curl(self, path: str, *args: str, cert: tuple[str, str] | None = None) -> tuple[int, str]:
        """`curl` (an independent TLS client) against this server: (status, body)."""
        auth = ["--cert", cert[0], "--key", cert[1]] if cert is not None else []
        out = subprocess.run(
            ["curl", "-sS", *auth, "--cacert", str(self.home.root), *args,
             "-w", "\n%{http_code}", f"{self.url}{path}"],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout  # fmt: skip
        body, status = out.rsplit("\n", 1)
        return int(status), body

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def start_server(
    home: Home,
    name: str = "server",
    extra: dict[str, str] | None = None,
    args: tuple[str, ...] = (),
    options: tuple[str, ...] = (),
    log_dir: Path | None = None,
    healthy: Callable[[Server], bool] | None = None,
) -> Server:
    """Start `pkiforge [options] serve [args]` (with `extra` environment) on a free port; wait
    for /healthz (or for `healthy`, which may raise httpx.TransportError or OSError while the
    server starts). Its output goes to a file in `log_dir` (default: the home)."""
    port = free_port()
    log = (log_dir or home.path) / f"{name}-{port}.log"
    db = ["--database-url", home.database_url] if home.database_url else []
    cmd = [sys.executable, "-m", "pkiforge.cli", "--home", str(home.path), *db, *options]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [*cmd, "serve", "--port", str(port), *args],
            env=env(extra),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Server(home, port, proc, log, extra or {})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited {proc.returncode}: {log.read_text()}")
        try:
            if (healthy or _healthz)(server):
                return server
        except (httpx.TransportError, OSError):
            pass
        time.sleep(0.2)
    server.stop()
    raise AssertionError(f"server did not become healthy: {log.read_text()}")


def _healthz(server: Server) -> bool:
    with server.client() as c:
        return c.get("/healthz").status_code == 200


@contextlib.contextmanager
def two_replicas(home: Home) -> Iterator[tuple[Server, Server]]:
    """Two `pkiforge serve` processes on `home`'s database; both stopped afterwards."""
    a = start_server(home, "a")
    try:
        b = start_server(home, "b")
    except BaseException:
        a.stop()
        raise
    try:
        yield a, b
    finally:
        b.stop()
        a.stop()
