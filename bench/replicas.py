"""Issuance through HAProxy over one, two and three `pkiforge serve` replicas on PostgreSQL.

Three replicas (one worker each) share one PostgreSQL database and one Redis and trust the
balancer's PROXY protocol v2 (server.proxy_protocol.trusted); HAProxy runs the shipped
deploy/haproxy/haproxy.cfg with only the first N of its server lines, a fresh HAProxy for
each round. The closed-loop load generator (bench/loadgen.py) sends CSRs through it. Each
round counts the certificates the database stored and the CPU seconds the N replicas used
(and HAProxy apart): CPU per certificate should not grow with N. The rounds alternate the
replica counts, the order rotating, and the medians are shown.

    .venv/bin/python -m bench.replicas --rounds 5 --duration 10
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

from bench.cpu import tree_cpu_seconds
from bench.issuance import PASSPHRASE, free_port, prepare
from bench.loadgen import Result, Target, run
from pkiforge.server.proxy import SIGNATURE

CONFIG = Path(__file__).parents[1] / "deploy" / "haproxy" / "haproxy.cfg"
ADMIN_URL = "postgresql://root@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/0"
LOCAL_V2 = SIGNATURE + b"\x20\x00\x00\x00"  # PROXY v2 LOCAL: the balancer's own connection


@dataclass
class Round:
    replicas: int
    result: Result
    stored: int
    cpu_seconds: float  # the replicas' processes
    haproxy_cpu_seconds: float
    lock_waiters: float  # mean number of transactions waiting for an advisory lock

    def rate(self) -> float:
        return self.stored / self.result.seconds

    def per_replica(self) -> float:
        return self.rate() / self.replicas

    def cpu_ms_per_cert(self) -> float:
        return self.cpu_seconds * 1000 / self.stored if self.stored else float("nan")


@contextmanager
def database(synchronous_commit: str = "on") -> Iterator[str]:
    """A fresh PostgreSQL database for the run, dropped at the end."""
    name = f"pkiforge_bench_{secrets.token_hex(6)}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
        conn.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = {synchronous_commit}')
    try:
        yield f"postgresql+psycopg://root@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def stored(url: str) -> int:
    with psycopg.connect(url.replace("+psycopg", "")) as conn:
        row = conn.execute(
            "SELECT count(*) FROM certificates WHERE common_name = 'bench-client' "
            "AND profile = 'service'"
        ).fetchone()
    return int(row[0]) if row else 0


@contextmanager
def lock_sampler(url: str) -> Iterator[list[int]]:
    """Sample, every 50 ms, how many of the database's sessions wait for an advisory lock
    (the audit chain's, which every issuance takes until it commits)."""
    samples: list[int] = []
    stop = threading.Event()

    def sample() -> None:
        with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as conn:
            while not stop.wait(0.05):
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND wait_event = 'advisory'"
                ).fetchone()
                samples.append(int(row[0]) if row else 0)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        stop.set()
        thread.join(5)


def healthy(port: int, root: Path) -> bool:
    """GET /healthz as the balancer would ask it: a LOCAL header, then TLS."""
    ctx = ssl.create_default_context(cafile=str(root))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as raw:
            raw.sendall(LOCAL_V2)
            with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(
                    b"GET /healthz HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n"
                )
                return tls.recv(100).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


@contextmanager
def replicas(home: Path, root: Path, env: dict[str, str]) -> Iterator[list[tuple[int, int]]]:
    """Three replicas: [(port, pid)]."""
    procs: list[tuple[int, subprocess.Popen[bytes]]] = []
    try:
        for _ in range(3):
            port = free_port()
            cmd = [sys.executable, "-m", "pkiforge.cli", "--home", str(home), "serve",
                   "--port", str(port), "--workers", "1"]  # fmt: skip
            proc = subprocess.Popen(
                cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            procs.append((port, proc))
        for port, proc in procs:
            for _ in range(300):
                if proc.poll() is not None:
                    raise SystemExit(f"replica on {port} exited {proc.returncode}")
                if healthy(port, root):
                    break
                time.sleep(0.2)
            else:
                raise SystemExit(f"replica on {port} did not come up")
        yield [(port, proc.pid) for port, proc in procs]
    finally:
        for _, proc in procs:
            proc.terminate()
        for _, proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


def config_for(n: int) -> str:
    """The shipped HAProxy config with its first `n` server lines only."""
    return "".join(
        line
        for line in CONFIG.read_text().splitlines(keepends=True)
        if not (m := re.match(r"\s*server replica(\d)", line)) or int(m.group(1)) <= n
    )


@contextmanager
def haproxy(work: Path, root: Path, ports: list[int]) -> Iterator[tuple[int, int]]:
    """HAProxy with the shipped config's first len(ports) server lines: (its port, pid)."""
    n = len(ports)
    config = work / f"haproxy-{n}.cfg"
    config.write_text(config_for(n))
    port = free_port()
    env = {
        **os.environ,
        "PKIFORGE_LB_BIND": f"127.0.0.1:{port}",
        "PKIFORGE_CA_FILE": str(root),
        **{f"PKIFORGE_REPLICA{i}": f"127.0.0.1:{p}" for i, p in enumerate(ports, 1)},
    }
    proc = subprocess.Popen(
        ["haproxy", "-db", "-f", str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        ctx = ssl.create_default_context(cafile=str(root))
        for _ in range(100):
            try:
                with (
                    socket.create_connection(("127.0.0.1", port), timeout=2) as raw,
                    ctx.wrap_socket(raw, server_hostname="localhost"),
                ):
                    break
            except OSError:
                time.sleep(0.1)
        else:
            raise SystemExit("HAProxy did not come up")
        yield port, proc.pid
    finally:
        proc.terminate()
        proc.wait(10)


@dataclass
class Setup:
    """What every round uses: the CA's files, the database, a scratch folder, the replicas."""

    files: dict[str, Path]
    url: str
    work: Path
    up: list[tuple[int, int]]  # (port, pid) of each replica


def one_round(setup: Setup, n: int, args: argparse.Namespace) -> Round:
    f, url, used = setup.files, setup.url, setup.up[:n]
    with haproxy(setup.work, f["root"], [port for port, _ in used]) as (lb_port, lb_pid):
        target = Target(
            f"{n} replicas",
            f"https://localhost:{lb_port}/api/v1/certificates/request",
            json.dumps({"csr": f["csr"].read_text()}).encode(),
            str(f["root"]),
            str(f["client_cert"]),
            str(f["client_key"]),
        )
        # the warm-up is not measured: count and CPU from its end, over the measured window
        warm = run(target, concurrency=args.concurrency, warmup=0, duration=args.warmup)
        del warm
        before = stored(url)
        cpu0 = sum(tree_cpu_seconds(pid) or 0.0 for _, pid in used)
        lb0 = tree_cpu_seconds(lb_pid) or 0.0
        with lock_sampler(url) as waiting:
            result = run(target, concurrency=args.concurrency, warmup=0, duration=args.duration)
        cpu1 = sum(tree_cpu_seconds(pid) or 0.0 for _, pid in used)
        lb1 = tree_cpu_seconds(lb_pid) or 0.0
        count = stored(url) - before
    if count < result.requests:
        raise SystemExit(f"{n} replicas answered {result.requests} but stored only {count}")
    waiters = statistics.mean(waiting) if waiting else float("nan")
    return Round(n, result, count, cpu1 - cpu0, lb1 - lb0, waiters)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=12)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--key-type", default="p256", help="intermediate key: p256, rsa2048")
    parser.add_argument(
        "--synchronous-commit",
        choices=("on", "off"),
        default="on",
        help="PostgreSQL's synchronous_commit for the bench database: on (a certificate is on "
        "disk before it is answered; the default) or off (to see what the commit's flush costs)",
    )
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args()
    if shutil.which("haproxy") is None:
        raise SystemExit("haproxy not found: apt-get install haproxy")
    work = Path(tempfile.mkdtemp(prefix="pkiforge-bench-replicas-"))
    rows: list[Round] = []
    load = os.getloadavg()
    try:
        with database(args.synchronous_commit) as url:
            env = {
                **os.environ,
                "PKIFORGE_CA_PASSPHRASE": PASSPHRASE,
                "PKIFORGE_DATABASE_URL": url,
            }
            os.environ["PKIFORGE_DATABASE_URL"] = url  # prepare's CLI calls use it too
            f = prepare(work, args.key_type)
            with (f["home"] / "config.yaml").open("a") as config:
                config.write(
                    f"redis_url: {REDIS_URL}\n"
                    f"server:\n  proxy_protocol:\n    trusted: [127.0.0.1/32]\n"
                )
            with replicas(f["home"], f["root"], env) as up:
                for i in range(args.rounds):
                    order = [1, 2, 3][i % 3 :] + [1, 2, 3][: i % 3]
                    for n in order:
                        rows.append(one_round(Setup(f, url, work, up), n, args))
                        print(f"  round {i + 1}, {n} replicas: {rows[-1].rate():.1f} certs/s",
                              file=sys.stderr)  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
    end = os.getloadavg()
    print(
        f"intermediate {args.key_type}, {args.concurrency} concurrent clients through HAProxy, "
        f"{args.rounds} rounds of {args.duration:.0f} s after {args.warmup:.0f} s warm-up, "
        f"replicas of one worker on one PostgreSQL (synchronous_commit "
        f"{args.synchronous_commit}) + Redis, {os.cpu_count()} CPUs, load "
        f"average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the start, "
        f"{end[0]:.2f} {end[1]:.2f} {end[2]:.2f} at the end"
    )
    print(
        f"{'replicas':>8} {'round':>5} {'certs/s':>8} {'/replica':>9} {'p50 ms':>7} "
        f"{'p99 ms':>7} {'errors':>6} {'CPU ms/cert':>11} {'HAProxy ms/cert':>15} "
        f"{'lock waiters':>12}"
    )
    medians: dict[int, float] = {}
    for n in (1, 2, 3):
        mine = [r for r in rows if r.replicas == n]
        for i, r in enumerate(mine):
            print(
                f"{n:8d} {i + 1:5d} {r.rate():8.1f} {r.per_replica():9.1f} "
                f"{r.result.pct(50):7.1f} {r.result.pct(99):7.1f} {r.result.errors:6d} "
                f"{r.cpu_ms_per_cert():11.2f} {r.haproxy_cpu_seconds * 1000 / r.stored:15.3f} "
                f"{r.lock_waiters:12.2f}"
            )
        medians[n] = statistics.median(r.cpu_ms_per_cert() for r in mine)
        print(
            f"{n:8d} {'med':>5} {statistics.median(r.rate() for r in mine):8.1f} "
            f"{statistics.median(r.per_replica() for r in mine):9.1f} "
            f"{statistics.median(r.result.pct(50) for r in mine):7.1f} "
            f"{statistics.median(r.result.pct(99) for r in mine):7.1f} {'':6} "
            f"{medians[n]:11.2f} {'':15} "
            f"{statistics.median(r.lock_waiters for r in mine):12.2f}"
        )
    spread = max(medians.values()) / min(medians.values()) - 1
    print(
        f"CPU ms/cert (the replicas' processes over the measured window, per certificate "
        f"stored): largest median {spread * 100:.1f}% above the smallest "
        f"({'within' if spread <= 0.15 else 'over'} 15%); lock waiters: the mean number of "
        "transactions waiting for an advisory lock (pg_stat_activity, sampled every 50 ms)"
    )


if __name__ == "__main__":
    main()
