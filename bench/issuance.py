"""Certificate issuance over HTTPS with client certificates: pkiforge vs cfssl vs OpenBao, one run.

All three sign the same CSR with the same intermediate CA key (exported once from pkiforge for
the peers), over TLS with mutual TLS, and all persist every certificate: pkiforge in its SQLite
store with an audit entry per certificate, cfssl in its SQLite certdb (`-db-config`), both in
WAL mode with the sync level of `--sync` (full: every certificate is on disk before it is
answered) unless `--cfssl-db default` gives cfssl its own; OpenBao in its raft storage
(bench/openbao.py: a listener that requires client certificates, the PKI engine's `sign`
endpoint with a role like pkiforge's service profile, a token from cert auth), a fresh one
each round. The same closed-loop load generator (bench/loadgen.py: N workers, one keep-alive
connection each) drives each server in turn for the same duration on this machine's loopback.

    .venv/bin/python -m bench.issuance --key-type rsa2048 --concurrency 16 --duration 15
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import socket
import sqlite3
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.cpu import tree_cpu_seconds
from bench.loadgen import Result, Target, run
from bench.openbao import bao_binary, bao_version, pkiforge_tls, running_openbao

PASSPHRASE = "bench-passphrase-0123456789"
CFSSL_SCHEMA = """
CREATE TABLE IF NOT EXISTS certificates (serial_number blob NOT NULL,
  authority_key_identifier blob NOT NULL, ca_label blob, status blob NOT NULL, reason int,
  expiry timestamp, revoked_at timestamp, pem blob NOT NULL,
  PRIMARY KEY(serial_number, authority_key_identifier));
CREATE TABLE IF NOT EXISTS ocsp_responses (serial_number blob NOT NULL,
  authority_key_identifier blob NOT NULL, body blob NOT NULL, expiry timestamp,
  PRIMARY KEY(serial_number, authority_key_identifier));
"""


@dataclass
class Round:
    """One server's round: what the clients saw, the certificates it stored meanwhile (warm-up
    included), and the CPU seconds its processes used over the same time (None without /proc).
    """

    result: Result
    stored: int
    cpu_seconds: float | None

    def cpu_ms_per_cert(self) -> float:
        if self.cpu_seconds is None or self.stored <= 0:
            return float("nan")
        return self.cpu_seconds * 1000 / self.stored


def _measured(pid: int, drive: Callable[[], Result]) -> tuple[Result, float | None]:
    """Run `drive` and the CPU seconds process `pid` and its children used meanwhile."""
    before = tree_cpu_seconds(pid)
    result = drive()
    after = tree_cpu_seconds(pid)
    return result, (after - before if before is not None and after is not None else None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pkiforge(home: Path, *args: str) -> str:
    env = {**os.environ, "PKIFORGE_CA_PASSPHRASE": PASSPHRASE}
    proc = subprocess.run(
        [sys.executable, "-m", "pkiforge.cli", "--home", str(home), *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"pkiforge {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


def wait_ready(url: str, ca: Path, cert: tuple[str, str] | None = None, tries: int = 100) -> None:
    ctx = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        ctx.load_cert_chain(*cert)
    for _ in range(tries):
        try:
            httpx.get(url, verify=ctx, timeout=2.0)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not come up")


@contextmanager
def process(
    args: list[str], env: dict[str, str] | None = None, cwd: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        args, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def prepare(work: Path, key_type: str) -> dict[str, Path]:
    """A pkiforge CA with the chosen intermediate, the CSR, client and server certificates."""
    home = work / "home"
    pkiforge(home, "init", "--root-key-type", "p256", "--intermediate-key-type", key_type)
    (home / "config.yaml").write_text(BENCH_CONFIG)
    (home / "service_whitelist.yaml").write_text(BENCH_WHITELIST)
    f = {"home": home, "root": work / "root.pem", "chain": work / "chain.pem"}
    (f["root"]).write_text(pkiforge(home, "ca", "chain", "root"))
    (f["chain"]).write_text(pkiforge(home, "ca", "chain", "services"))
    for name, extra in (
        ("client", ["--cn", "bench-client"]),
        ("tls", ["--cn", "localhost", "--san", "IP:127.0.0.1", "--profile", "server", "--chain"]),
    ):
        pkiforge(
            home,
            "cert",
            "issue",
            *extra,
            "--key-out",
            str(work / f"{name}.key"),
            "--out",
            str(work / f"{name}.pem"),
        )
        f[f"{name}_cert"], f[f"{name}_key"] = work / f"{name}.pem", work / f"{name}.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            str(work / "csr.key"),
            "-subj",
            "/CN=bench-client",
            "-addext",
            "subjectAltName=DNS:bench-client",
            "-out",
            str(work / "svc.csr"),
        ],
        check=True,
        capture_output=True,
    )
    f["csr"] = work / "svc.csr"
    return f


def add_services(home: Path, count: int) -> None:
    """Register `count` other services, three names each (a name, a wildcard, an address)."""
    from pkiforge.ca.registry_models import ServiceRecord
    from pkiforge.store.db import SqlStore

    if count == 0:
        return
    store = SqlStore.open(f"sqlite:///{home / 'pkiforge.db'}")
    now = dt.datetime.now(dt.UTC)
    with store.transaction() as tx:
        for i in range(count):
            names = (
                f"DNS:svc-{i}.internal",
                f"DNS:*.svc-{i}.internal",
                f"IP:10.{i // 256}.{i % 256}.1",
            )
            tx.services.add(ServiceRecord(f"svc-{i}", f"svc {i}", now, now, names=names))
    store.close()


BENCH_CONFIG = """\
rate_limits:
  issuance_limit: 100000000
"""
BENCH_WHITELIST = """\
services:
  - service_id: bench-client
    allowed_operations: [request, renew, revoke, download, list]
    allowed_names: ["bench-client"]
"""


def export_intermediate(f: dict[str, Path], work: Path) -> tuple[Path, Path]:
    """The intermediate's certificate and unencrypted key, for cfssl (bench only)."""
    from cryptography.hazmat.primitives import serialization as ser

    from pkiforge.signers.file import decrypt_key

    key = decrypt_key((f["home"] / "ca" / "services" / "key.pem").read_bytes(), PASSPHRASE.encode())
    key_file = work / "cfssl-ca.key"
    key_file.write_bytes(
        key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.NoEncryption())
    )
    key_file.chmod(0o600)
    cert_file = work / "cfssl-ca.pem"
    pem = f["chain"].read_text()
    cert_file.write_text(pem[: pem.index("-----END CERTIFICATE-----") + 26])
    return cert_file, key_file


# cfssl's certdb DSN (mattn/go-sqlite3 parameters). "wal" is pkiforge's own configuration:
# WAL, the sync level of --sync, and writers that wait for the lock instead of failing.
# "default" is what cfssl does unless told: the rollback journal, with a sync of the journal
# and of the database file in every commit, and no busy timeout.
CFSSL_DB = ("wal", "default")


def cfssl_data_source(db: Path, args: argparse.Namespace) -> str:
    if args.cfssl_db == "default":
        return str(db)
    return f"{db}?_journal_mode=WAL&_synchronous={args.sync.upper()}&_busy_timeout=5000"


def bench_cfssl(f: dict[str, Path], work: Path, args: argparse.Namespace) -> Round:
    ca_cert, ca_key = export_intermediate(f, work)
    db = work / "cfssl.db"
    with sqlite3.connect(db) as conn:
        conn.executescript(CFSSL_SCHEMA)
        before = int(conn.execute("SELECT count(*) FROM certificates").fetchone()[0])
    source = cfssl_data_source(db, args)
    (work / "cfssl-db.json").write_text(json.dumps({"driver": "sqlite3", "data_source": source}))
    (work / "cfssl-config.json").write_text(
        json.dumps(
            {
                "signing": {
                    "default": {
                        "expiry": "8760h",
                        "usages": [
                            "digital signature",
                            "key encipherment",
                            "server auth",
                            "client auth",
                        ],
                    }
                }
            }
        )
    )
    (work / "client-cas.pem").write_text(f["root"].read_text() + f["chain"].read_text())
    port = free_port()
    cmd = [
        "cfssl",
        "serve",
        "-address",
        "127.0.0.1",
        "-port",
        str(port),
        "-ca",
        str(ca_cert),
        "-ca-key",
        str(ca_key),
        "-tls-cert",
        str(f["tls_cert"]),
        "-tls-key",
        str(f["tls_key"]),
        "-mutual-tls-ca",
        str(work / "client-cas.pem"),
        "-db-config",
        str(work / "cfssl-db.json"),
        "-config",
        str(work / "cfssl-config.json"),
        "-loglevel",
        "5",
    ]
    url = f"https://127.0.0.1:{port}/api/v1/cfssl/sign"
    body = json.dumps({"certificate_request": f["csr"].read_text()}).encode()
    target = Target(
        "cfssl",
        url,
        body,
        str(f["root"]),
        str(f["client_cert"]),
        str(f["client_key"]),
        ok=lambda status, body: status == 200 and json.loads(body).get("success") is True,
    )
    with process(cmd) as proc:
        wait_ready(
            f"https://127.0.0.1:{port}/api/v1/cfssl/health",
            f["root"],
            (str(f["client_cert"]), str(f["client_key"])),
        )
        result, cpu = _measured(proc.pid, lambda: _drive(target, args))
    with sqlite3.connect(db) as conn:
        stored = int(conn.execute("SELECT count(*) FROM certificates").fetchone()[0])
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    # WAL is a property of the file once set: reading it back shows the DSN took effect
    if (mode == "wal") != (args.cfssl_db == "wal"):
        raise SystemExit(f"cfssl's certdb is in journal mode {mode!r}, not {args.cfssl_db!r}")
    return Round(result, stored - before, cpu)


def bench_openbao(f: dict[str, Path], work: Path, args: argparse.Namespace, i: int) -> Round:
    """A fresh OpenBao (raft in its own directory) for the round, stopped and removed after."""
    ca_cert, ca_key = export_intermediate(f, work)
    tls = pkiforge_tls(f, work)
    where = work / f"openbao-{i}"
    try:
        with running_openbao(where, tls, ca_cert.read_text(), ca_key.read_text(), args.bao) as bao:
            before = bao.stored()
            target = Target(
                "openbao",
                f"{bao.url}{bao.sign_path()}",
                json.dumps({"csr": f["csr"].read_text(), "common_name": "bench-client"}).encode(),
                str(f["root"]),
                str(f["client_cert"]),
                str(f["client_key"]),
                ok=lambda status, body: status == 200 and b'"serial_number"' in body,
                headers={"content-type": "application/json", "X-Vault-Token": bao.token},
            )
            result, cpu = _measured(bao.pid, lambda: _drive(target, args))
            stored = bao.stored() - before
    finally:
        shutil.rmtree(where, ignore_errors=True)
    return Round(result, stored, cpu)


def _drive(target: Target, args: argparse.Namespace) -> Result:
    return run(target, concurrency=args.concurrency, warmup=args.warmup, duration=args.duration)


def bench_pkiforge(f: dict[str, Path], args: argparse.Namespace) -> Round:
    port = free_port()
    env = {
        **os.environ,
        "PKIFORGE_CA_PASSPHRASE": PASSPHRASE,
        "PKIFORGE_SQLITE_SYNCHRONOUS": args.sync,
    }
    cmd = [
        sys.executable,
        "-m",
        "pkiforge.cli",
        "--home",
        str(f["home"]),
        "serve",
        "--port",
        str(port),
        "--workers",
        str(args.workers),
    ]
    url = f"https://localhost:{port}/api/v1/certificates/request"
    body = json.dumps({"csr": f["csr"].read_text()}).encode()
    before = _count_pkiforge(f["home"])
    target = Target(
        "pkiforge", url, body, str(f["root"]), str(f["client_cert"]), str(f["client_key"])
    )
    with process(cmd, env=env) as proc:
        wait_ready(f"https://localhost:{port}/healthz", f["root"])
        result, cpu = _measured(proc.pid, lambda: _drive(target, args))
    return Round(result, _count_pkiforge(f["home"]) - before, cpu)


def _count_pkiforge(home: Path) -> int:
    with sqlite3.connect(home / "pkiforge.db") as conn:
        return (
            int(
                conn.execute(
                    "SELECT count(*) FROM certificates WHERE status = 'active' "
                    "AND common_name = 'bench-client' AND profile = 'service'"
                ).fetchone()[0]
            )
            - 1
        )


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


SERVERS = ("cfssl", "openbao", "pkiforge")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--key-type", default="rsa2048", help="intermediate key: rsa2048, p256")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--workers", type=int, default=2, help="pkiforge worker processes")
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternating rounds of each server; medians shown"
    )
    parser.add_argument("--only", choices=SERVERS, help="run one server only")
    parser.add_argument(
        "--skip", choices=SERVERS, action="append", default=[], help="leave a server out"
    )
    parser.add_argument(
        "--services", type=int, default=0, help="other services registered with pkiforge"
    )
    parser.add_argument(
        "--cfssl-db",
        choices=CFSSL_DB,
        default="wal",
        help="cfssl's SQLite certdb: wal (as pkiforge's store; the default) or cfssl's default",
    )
    parser.add_argument(
        "--sync",
        choices=("full", "normal"),
        default="full",
        help="SQLite sync level of both servers: full (a certificate is on disk before it is "
        "answered; pkiforge's default) or normal",
    )
    return parser.parse_args(argv)


def _servers(args: argparse.Namespace) -> list[str]:
    return [s for s in SERVERS if args.only in (None, s) and s not in args.skip]


def main() -> None:
    args = parse_args()
    servers = _servers(args)
    if "cfssl" in servers and shutil.which("cfssl") is None:
        raise SystemExit("cfssl not found: apt-get install golang-cfssl (or --skip cfssl)")
    args.bao = bao_binary() if "openbao" in servers else None
    work = Path(tempfile.mkdtemp(prefix="pkiforge-bench-"))
    rows: dict[str, list[Round]] = {name: [] for name in servers}
    load = os.getloadavg()[0]
    try:
        f = prepare(work, args.key_type)
        add_services(f["home"], args.services)
        for i in range(args.rounds):
            # rotate who goes first, so a machine that drifts during the run favours no one
            order = servers[i % len(servers) :] + servers[: i % len(servers)]
            if i % 2:
                order.reverse()
            for name in order:
                if name == "cfssl":
                    rows[name].append(bench_cfssl(f, work, args))
                elif name == "openbao":
                    rows[name].append(bench_openbao(f, work, args, i))
                else:
                    rows[name].append(bench_pkiforge(f, args))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"intermediate {args.key_type}, {args.concurrency} concurrent clients, "
        f"{args.rounds} rounds of {args.duration:.0f} s after {args.warmup:.0f} s warm-up, "
        f"pkiforge workers={args.workers} with {args.services} other services registered, "
        f"sync {args.sync}, cfssl certdb {args.cfssl_db}, {os.cpu_count()} CPUs, "
        f"load average {load:.2f} at the start, {os.getloadavg()[0]:.2f} at the end"
    )
    if args.bao is not None:
        print(bao_version(args.bao).splitlines()[0])
    print(
        f"{'server':10} {'round':>5} {'certs/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} "
        f"{'CPU ms/cert':>12}"
    )
    medians: dict[str, float] = {}
    for name, results in rows.items():
        for i, row in enumerate(results):
            r = row.result
            if row.stored < r.requests:
                raise SystemExit(f"{name} answered {r.requests} but stored only {row.stored}")
            print(
                f"{name:10} {i + 1:5d} {r.rate:9.1f} {r.pct(50):8.1f} {r.pct(99):8.1f} "
                f"{r.errors:7d} {row.cpu_ms_per_cert():12.2f}"
            )
        if results:
            medians[name] = _median([row.result.rate for row in results])
            print(
                f"{name:10} {'med':>5} {medians[name]:9.1f} "
                f"{_median([row.result.pct(50) for row in results]):8.1f} "
                f"{_median([row.result.pct(99) for row in results]):8.1f} {'':7} "
                f"{_median([row.cpu_ms_per_cert() for row in results]):12.2f}"
            )
    for peer in ("cfssl", "openbao"):
        if "pkiforge" not in medians or peer not in medians:
            continue
        ratios = [
            _ratio(p.result.rate, c.result.rate)
            for p, c in zip(rows["pkiforge"], rows[peer], strict=True)
        ]
        print(
            f"ratio pkiforge/{peer}: {_ratio(medians['pkiforge'], medians[peer]):.2f}x of the "
            "medians; "
            f"per round {', '.join(f'{r:.2f}x' for r in ratios)}"
        )
    print(
        "CPU ms/cert: CPU time of the server's processes over the round (warm-up included) per "
        "certificate it stored; the load generator is not counted"
    )


if __name__ == "__main__":
    main()
