"""Two configurations of pkiforge, A and B, in alternating rounds: issuance and signing benches.

A configuration is a source tree and environment settings for the server it runs. The tree
is this checkout (the default), or a git revision exported to a temporary directory
(`--a-rev`), optionally with a patch applied (`--a-patch`); the server, the CLI that
prepares its home and the tree's own bench harness (the signing bench's app,
bench/inprocess.py) run from that tree, its `src` first on PYTHONPATH. Settings are
`--a-env K=V`. The load generator, the client and this driver are always this checkout's.

Rounds alternate A B A B ..., and each round starts a fresh server on the configuration's own
home, so a machine that drifts (other work, a warming disk) touches both alike. Prints each
round, the medians of rate, p50, p99 and server CPU per request, the ratio B/A of each median,
and the load average at the start and end.

    .venv/bin/python -m bench.ab --bench issuance --rounds 5 \\
        --b-env PKIFORGE_OFF=coalesce                      # one switch of the measurement build
    .venv/bin/python -m bench.ab --a-rev fd7f8da --b-rev main   # two revisions

`--bench callgrind` counts instructions instead (valgrind): the in-process issuance path
(bench/inprocess.py) or, with `--callgrind nonces`, the Redis nonce claim; each configuration
runs with N and 2N requests and the difference per request is reported, start-up excluded.
"""

from __future__ import annotations

import argparse
import datetime as dt
import inspect
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench.cpu import tree_cpu_seconds
from bench.issuance import (
    PASSPHRASE,
    _count_pkiforge,
    free_port,
    prepare,
    process,
    wait_ready,
)
from bench.loadgen import Result, Target, run

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Config:
    """One side of the comparison: its label, its source tree, its environment."""

    label: str
    root: Path  # the tree: its `src` holds the `pkiforge` package, its `bench` the harness
    env: dict[str, str]
    home: dict[str, Path] = field(default_factory=dict)  # bench.issuance.prepare's files

    def environ(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        src = str(self.root / "src")
        path = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p)
        return {**os.environ, **(extra or {}), **self.env, "PYTHONPATH": path}


@dataclass
class Figures:
    """One round of one configuration: what the clients saw and the server's CPU per request."""

    rate: float
    p50: float
    p99: float
    errors: int
    cpu: float  # server CPU per request: ms for issuance, µs for signing


@contextmanager
def environ(env: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def source_tree(rev: str | None, patch: Path | None, work: Path, name: str) -> Path:
    """This checkout, or `rev` exported (and patched) under `work`."""
    if rev is None and patch is None:
        return ROOT
    tree = work / f"tree-{name}"
    tree.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev or "HEAD"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    if patch is not None:
        subprocess.run(["git", "apply", str(patch.resolve())], cwd=tree, check=True)
    return tree


def _env_pairs(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--*-env wants KEY=VALUE, got {pair!r}")
        out[key] = value
    return out


def issuance_round(cfg: Config, args: argparse.Namespace) -> Figures:
    """bench/issuance.py's pkiforge side on `cfg`'s tree, home and settings."""
    f = cfg.home
    port = free_port()
    env = cfg.environ(
        {"PKIFORGE_CA_PASSPHRASE": PASSPHRASE, "PKIFORGE_SQLITE_SYNCHRONOUS": args.sync}
    )
    cmd = [sys.executable, "-m", "pkiforge.cli", "--home", str(f["home"]), "serve"]
    cmd += ["--port", str(port), "--workers", str(args.workers)]
    body = json.dumps({"csr": f["csr"].read_text()}).encode()
    url = f"https://localhost:{port}/api/v1/certificates/request"
    target = Target(
        "pkiforge", url, body, str(f["root"]), str(f["client_cert"]), str(f["client_key"])
    )
    before = _count_pkiforge(f["home"])
    with process(cmd, env=env) as proc:
        wait_ready(f"https://localhost:{port}/healthz", f["root"])
        time.sleep(args.settle)  # every worker up, whichever way workers start
        cpu0 = tree_cpu_seconds(proc.pid)
        result = run(
            target, concurrency=args.concurrency, warmup=args.warmup, duration=args.duration
        )
        cpu1 = tree_cpu_seconds(proc.pid)
    stored = _count_pkiforge(f["home"]) - before
    if stored < result.requests:
        raise SystemExit(f"{cfg.label} answered {result.requests} but stored only {stored}")
    cpu = (cpu1 - cpu0) * 1000 / stored if cpu0 is not None and cpu1 is not None else float("nan")
    return _figures(result, cpu)


def signing_round(cfg: Config, args: argparse.Namespace) -> Figures:
    """bench/signing.py's server (Redis nonces) on `cfg`'s tree: Ed25519-signed requests,
    signed before the clock starts, sent by the lean load generator."""
    from bench.signing import _keys, _public_pem, _wait, presign
    from pkiforge.client.auth import SigningAuth

    keys = {"ed25519": _keys()["ed25519"]}
    with tempfile.TemporaryDirectory() as tmp:
        keys_file = Path(tmp) / "keys.json"
        keys_file.write_text(json.dumps({n: _public_pem(k) for n, k in keys.items()}))
        port = free_port()
        url = f"http://127.0.0.1:{port}/hello"
        auth = SigningAuth(key_id="ed25519", private_key=keys["ed25519"])  # type: ignore[arg-type]
        prefix = f"pkiforge-ab-{uuid.uuid4()}:"
        # The requests are signed before the server starts. A store that keeps when its
        # memory began refuses signatures older than that, so the memory begins before they
        # are signed, as in a deployment that has run for a while (trees without it ignore it).
        _begin_nonce_memory(args.redis, prefix)
        ready = presign(url, auth, args.presign_count)
        cmd = [sys.executable, "-m", "bench.signing", "--serve", str(port)]
        cmd += ["--keys-file", str(keys_file), "--redis", args.redis, "--prefix", prefix]
        target = Target(
            "signing",
            url,
            b"",
            "",
            "",
            "",
            ok=lambda status, _: status == 200,
            supply=lambda: ready.popleft() if ready else None,
        )
        with process(cmd, env=cfg.environ(), cwd=cfg.root) as proc:
            _wait(f"http://127.0.0.1:{port}/open")
            run(target, concurrency=args.concurrency, warmup=0, duration=args.warmup)
            cpu0 = tree_cpu_seconds(proc.pid)
            result = run(target, concurrency=args.concurrency, warmup=0, duration=args.duration)
            cpu1 = tree_cpu_seconds(proc.pid)
    if result.ran_out:
        raise SystemExit("ran out of pre-signed requests; raise --presign-count")
    done = max(result.requests, 1)
    cpu = (cpu1 - cpu0) * 1e6 / done if cpu0 is not None and cpu1 is not None else float("nan")
    return _figures(result, cpu)


def _figures(result: Result, cpu: float) -> Figures:
    return Figures(result.rate, result.pct(50), result.pct(99), result.errors, cpu)


def callgrind_instructions(cfg: Config, args: argparse.Namespace, requests: int) -> int:
    """Instructions (Ir) of one in-process run of `requests` requests under callgrind."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        if args.callgrind == "nonces":  # this driver, the tree's RedisNonceStore
            code = ["-m", "bench.ab", "--nonces", str(requests), "--redis", args.redis]
            cwd = ROOT
        else:  # the tree's own in-process bench
            cwd = cfg.root
            code = ["-m", "bench.inprocess", "--key-type", args.key_type]
            code += ["--requests", str(requests), "--warmup", str(args.callgrind_warmup)]
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable]
        subprocess.run([*cmd, *code], env=cfg.environ(), cwd=cwd, check=True, capture_output=True)
        match = re.search(r"^(?:summary|totals): (\d+)", out.read_text(), re.M)
        if match is None:
            raise SystemExit("no instruction total in callgrind's output")
        return int(match.group(1))


def _begin_nonce_memory(redis_url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        # as redis_nonces.py writes it: the start in ms and the Redis run it belongs to; it
        # expires after the run, as the nonces do (an hour outlasts any round)
        began = f"{int((time.time() - 1) * 1000)}:{client.info('server')['run_id']}"
        client.set(f"{prefix}memory-start", began, ex=3600)
    finally:
        client.close()


def nonces(count: int, redis_url: str) -> None:
    """`count` nonce claims against Redis, as the request verifier makes them (for callgrind)."""
    import redis

    from pkiforge.auth import RedisNonceStore

    prefix = f"pkiforge-ab-{uuid.uuid4()}:"
    _begin_nonce_memory(redis_url, prefix)
    store = RedisNonceStore(redis.Redis.from_url(redis_url), prefix=prefix)
    # trees that know when their store's memory began are told when each signature was made
    signed: dict[str, dt.datetime] = {}
    if "created" in inspect.signature(store.check_and_store).parameters:
        signed = {"created": dt.datetime.now(dt.UTC)}
    for i in range(20 + count):  # 20 to warm up, then `count`
        if not store.check_and_store("k", f"n{i}", 60, **signed):
            raise SystemExit("a fresh nonce was reported as reused")


def _med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def report(rows: dict[str, list[Figures]], labels: list[str], unit: str) -> dict[str, object]:
    print(
        f"{'config':18} {'round':>5} {'rate/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'errors':>6} {'CPU ' + unit:>12}"
    )
    medians: dict[str, dict[str, float]] = {}
    for label in labels:
        for i, r in enumerate(rows[label]):
            print(
                f"{label:18} {i + 1:5d} {r.rate:9.1f} {r.p50:8.2f} {r.p99:8.2f} {r.errors:6d} "
                f"{r.cpu:12.3f}"
            )
        m = {k: _med([getattr(r, k) for r in rows[label]]) for k in ("rate", "p50", "p99", "cpu")}
        medians[label] = m
        print(
            f"{label:18} {'med':>5} {m['rate']:9.1f} {m['p50']:8.2f} {m['p99']:8.2f} {'':6} "
            f"{m['cpu']:12.3f}"
        )
    a, b = (medians[label] for label in labels)
    ratios = {k: b[k] / a[k] for k in a}
    print(
        f"B/A of the medians: rate {ratios['rate']:.3f}, p50 {ratios['p50']:.3f}, "
        f"p99 {ratios['p99']:.3f}, CPU/request {ratios['cpu']:.3f}"
    )
    per_round = [
        rb.rate / ra.rate for ra, rb in zip(rows[labels[0]], rows[labels[1]], strict=False)
    ]
    print(f"B/A rate per round: {', '.join(f'{x:.3f}' for x in per_round)}")
    return {"medians": medians, "ratios": ratios, "rate_ratio_per_round": per_round}


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for side in ("a", "b"):
        parser.add_argument(f"--{side}-label", default=side.upper())
        parser.add_argument(f"--{side}-rev", help="git revision (default: this checkout)")
        parser.add_argument(f"--{side}-patch", type=Path, help="patch applied to the revision")
        parser.add_argument(f"--{side}-env", action="append", default=[], metavar="K=V")
    parser.add_argument("--bench", choices=("issuance", "signing", "callgrind"), default="issuance")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of each configuration")
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--settle", type=float, default=1.0, help="seconds after ready")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--key-type", default="rsa2048", help="intermediate key")
    parser.add_argument("--sync", choices=("full", "normal"), default="full")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--presign-count", type=int, default=40000)
    parser.add_argument("--callgrind", choices=("inprocess", "nonces"), default="inprocess")
    parser.add_argument("--callgrind-requests", type=int, default=40)
    parser.add_argument("--callgrind-warmup", type=int, default=20)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--nonces", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.nonces is not None:
        nonces(args.nonces, args.redis)
        return
    work = Path(tempfile.mkdtemp(prefix="pkiforge-ab-"))
    try:
        configs = [
            Config(
                getattr(args, f"{s}_label"),
                source_tree(getattr(args, f"{s}_rev"), getattr(args, f"{s}_patch"), work, s),
                _env_pairs(getattr(args, f"{s}_env")),
            )
            for s in ("a", "b")
        ]
        if configs[0].label == configs[1].label:
            raise SystemExit("the two configurations need different labels")
        out = compare(configs, args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json is not None:
        args.json.write_text(json.dumps(out, indent=2) + "\n")


def compare(configs: list[Config], args: argparse.Namespace, work: Path) -> dict[str, object]:
    labels = [c.label for c in configs]
    start_load = _load()
    print(f"load average at start: {start_load}", flush=True)
    described = "; ".join(f"{c.label}: tree {c.root}, env {c.env}" for c in configs)
    out: dict[str, object] = {
        "configs": described,
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    if args.bench == "callgrind":
        counts: dict[str, dict[str, int]] = {}
        n = args.callgrind_requests
        for cfg in configs:
            counts[cfg.label] = {str(k): callgrind_instructions(cfg, args, k) for k in (n, 2 * n)}
            per = (counts[cfg.label][str(2 * n)] - counts[cfg.label][str(n)]) / n
            print(f"{cfg.label:18} {per:14,.0f} instructions per request ({counts[cfg.label]})")
        per_req = {label: (c[str(2 * n)] - c[str(n)]) / n for label, c in counts.items()}
        ratio = per_req[labels[1]] / per_req[labels[0]]
        print(f"B/A instructions per request: {ratio:.3f}")
        out.update(counts=counts, per_request=per_req, ratio=ratio)
    else:
        if args.bench == "issuance":
            for cfg in configs:
                with environ({"PYTHONPATH": cfg.environ()["PYTHONPATH"]}):
                    home = work / f"home-{cfg.label}"
                    home.mkdir()
                    cfg.home = prepare(home, args.key_type)
        one: Callable[[Config, argparse.Namespace], Figures] = (
            issuance_round if args.bench == "issuance" else signing_round
        )
        rows: dict[str, list[Figures]] = {label: [] for label in labels}
        for i in range(args.rounds):
            for cfg in configs if i % 2 == 0 else configs[::-1]:
                rows[cfg.label].append(one(cfg, args))
                r = rows[cfg.label][-1]
                print(f"  round {i + 1} {cfg.label}: {r.rate:.1f}/s", flush=True)
        out["rows"] = {k: [vars(r) for r in v] for k, v in rows.items()}
        print(
            f"{args.bench}: {args.rounds} rounds of {args.duration:g} s after {args.warmup:g} s "
            f"warm-up, concurrency {args.concurrency}"
            + (
                f", {args.workers} workers, intermediate {args.key_type}, sync {args.sync}"
                if args.bench == "issuance"
                else ", Ed25519 pre-signed, one uvicorn worker, nonces in Redis"
            )
            + f"; {described}"
        )
        out.update(report(rows, labels, "ms" if args.bench == "issuance" else "µs"))
    end_load = _load()
    print(f"load average at start: {start_load}; at end: {end_load}")
    out["load"] = {"start": start_load, "end": end_load}
    return out


if __name__ == "__main__":
    main()
