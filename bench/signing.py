"""Requests per second to one small endpoint, unsigned and RFC 9421 signed, in one run.

    .venv/bin/python -m bench.signing [--presign] [--inline] [--rounds 3] [--duration 10]

A tiny FastAPI app runs under uvicorn (httptools, one worker) on loopback with the
three-line `SignatureAuthMiddleware` integration and the Redis nonce store; `/open` is exempt
and `/hello` is protected; both return the same JSON. The client (another process) keeps one
keep-alive connection per worker and signs every request (Ed25519, ECDSA P-256, RSA-PSS
2048) with `SigningAuth`, a fresh nonce each time. Prints a table and the ratios.

On two CPUs the Python client signing live (httpx) saturates a core before the server does,
so that figure is mostly the client's cost. `--presign` signs every request before the clock
starts (each with its own nonce and `created`, well inside the 300 s window; the unsigned
request is one request sent again and again) and sends the bytes as they are with the lean
load generator (bench/loadgen.py): the figure is what the server can verify. A scenario that
runs out of pre-signed requests stops the bench, since idle clients would undercount it.
Both modes also read the server process's CPU time per request from /proc, which says
what the server would do with a core of its own. docs/benchmarks.md reports both.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from bench.loadgen import Target, run

SCENARIOS = ("unsigned", "ed25519", "ecdsa-p256", "rsa-pss")


def _keys() -> dict[str, object]:
    return {
        "ed25519": ed25519.Ed25519PrivateKey.generate(),
        "ecdsa-p256": ec.generate_private_key(ec.SECP256R1()),
        "rsa-pss": rsa.generate_private_key(public_exponent=65537, key_size=2048),
    }


def _public_pem(key: object) -> str:
    public = key.public_key()  # type: ignore[attr-defined]
    return public.public_bytes(  # type: ignore[no-any-return]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def build_app(keys_file: Path, redis_url: str, prefix: str, inline: bool = False) -> object:
    """The app under test: one endpoint, exempt at /open, signed at /hello."""
    import datetime as dt

    import redis
    from fastapi import FastAPI

    from pkiforge.auth import InMemoryKeyResolver, RedisNonceStore, RegisteredKey, RequestVerifier
    from pkiforge.auth.algorithms import algorithm_for_key, load_public_key
    from pkiforge.auth.middleware import MiddlewareOptions, SignatureAuthMiddleware

    registered = []
    for key_id, pem in json.loads(keys_file.read_text()).items():
        public = load_public_key(pem.encode())
        registered.append(
            RegisteredKey(
                key_id, public, algorithm_for_key(public), "bench", dt.datetime.now(dt.UTC)
            )
        )
    app = FastAPI()

    @app.get("/hello")
    @app.get("/open")
    def hello() -> dict[str, str]:
        return {"hello": "world"}

    # the three-line integration
    nonces = RedisNonceStore(redis.Redis.from_url(redis_url), prefix=prefix)
    nonces.open()  # the memory begins before the first request is signed
    verifier = RequestVerifier(keys=InMemoryKeyResolver(registered), nonces=nonces)
    app.add_middleware(
        SignatureAuthMiddleware,
        verifier=verifier,
        exempt_paths=["/open"],
        options=MiddlewareOptions(inline=inline),  # --inline: Redis is on this machine
    )
    return app


def serve(port: int, keys_file: Path, redis_url: str, prefix: str, inline: bool) -> None:
    import uvicorn

    app = build_app(keys_file, redis_url, prefix, inline)
    uvicorn.run(app, host="127.0.0.1", port=port, http="httptools", log_level="warning")  # type: ignore[arg-type]


async def _worker(
    url: str,
    auth: httpx.Auth | None,
    window: tuple[float, float],
    counts: list[int],
) -> None:
    start, stop = window
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        while (t0 := time.perf_counter()) < stop:
            response = await client.get(url, auth=auth) if auth else await client.get(url)
            if t0 >= start:
                counts[0 if response.status_code == 200 else 1] += 1


async def _live(
    url: str, auth: httpx.Auth | None, concurrency: int, seconds: float
) -> tuple[int, int]:
    counts = [0, 0]
    now = time.perf_counter()
    window = (now, now + seconds)
    await asyncio.gather(*[_worker(url, auth, window, counts) for _ in range(concurrency)])
    return counts[0], counts[1]


@dataclass(frozen=True)
class Figures:
    rate: float  # requests per second
    errors: int
    cpu_us: float  # server CPU time per request (user + system), from /proc


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` (Linux /proc; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _timed(
    pid: int, load: Callable[[float], tuple[int, int]], timing: tuple[float, float]
) -> Figures:
    """Warm up, then run `load` for the measured window and read the server's CPU around it."""
    warmup, duration = timing
    load(warmup)
    before = _cpu_seconds(pid)
    done, errors = load(duration)
    cpu = _cpu_seconds(pid) - before
    return Figures(done / duration, errors, cpu / done * 1e6 if done else float("nan"))


def measure_live(
    pid: int, url: str, auth: httpx.Auth | None, concurrency: int, timing: tuple[float, float]
) -> Figures:
    """httpx signing each request as it goes."""

    def load(seconds: float) -> tuple[int, int]:
        return asyncio.run(_live(url, auth, concurrency, seconds))

    return _timed(pid, load, timing)


def presign(url: str, auth: httpx.Auth | None, count: int) -> deque[bytes]:
    """`count` requests as HTTP/1.1 bytes, each signed now with its own nonce."""
    ready: deque[bytes] = deque()
    for _ in range(count):
        request = httpx.Request("GET", url)
        if auth is not None:
            request = next(auth.sync_auth_flow(request))
        head = [f"GET {request.url.raw_path.decode()} HTTP/1.1"]
        head += [f"{name}: {value}" for name, value in request.headers.multi_items()]
        ready.append(("\r\n".join(head) + "\r\n\r\n").encode())
    return ready


def measure_presigned(
    pid: int, url: str, ready: deque[bytes], concurrency: int, timing: tuple[float, float]
) -> Figures:
    """The requests in `ready` sent as they are, by the lean load generator."""

    # One request is an unsigned one: the same bytes may be sent again and again.
    again = ready[0] if len(ready) == 1 else None

    def supply() -> bytes | None:
        if again is not None:
            return again
        return ready.popleft() if ready else None

    target = Target(
        "signing", url, b"", "", "", "", ok=lambda status, _: status == 200, supply=supply
    )

    def load(seconds: float) -> tuple[int, int]:
        result = run(target, concurrency=concurrency, warmup=0, duration=seconds)
        if result.ran_out:  # idle clients would undercount the rate: no figure beats a wrong one
            raise SystemExit(f"{url} ran out of pre-signed requests; raise --presign-count")
        return result.requests, result.errors

    return _timed(pid, load, timing)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit("server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every scenario")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument(
        "--presign",
        action="store_true",
        help="sign every request before timing: measure the server alone",
    )
    parser.add_argument(
        "--presign-count",
        type=int,
        default=40000,
        help="pre-signed requests per signed scenario (warm-up included)",
    )
    parser.add_argument(
        "--inline",
        action="store_true",
        help="verify in the event loop (MiddlewareOptions.inline), not in a worker thread",
    )
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--keys-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--prefix", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.keys_file, args.redis, args.prefix, args.inline)
        return

    keys = _keys()
    prefix = f"pkiforge-bench-{uuid.uuid4()}:"
    with tempfile.TemporaryDirectory() as tmp:
        keys_file = Path(tmp) / "keys.json"
        keys_file.write_text(json.dumps({name: _public_pem(k) for name, k in keys.items()}))
        port = _free_port()
        cmd = [sys.executable, "-m", "bench.signing", "--serve", str(port)]
        cmd += ["--keys-file", str(keys_file)]
        cmd += ["--redis", args.redis, "--prefix", prefix, *(["--inline"] if args.inline else [])]
        server = subprocess.Popen(cmd, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            base = f"http://127.0.0.1:{port}"
            _wait(base + "/open")
            rounds: list[dict[str, Figures]] = []
            for i in range(args.rounds):
                # rotate the order each round, so that a machine drifting during the run
                # favours no scenario
                order = SCENARIOS[i % len(SCENARIOS) :] + SCENARIOS[: i % len(SCENARIOS)]
                rounds.append(
                    {name: _scenario(server.pid, name, base, keys, args) for name in order}
                )
        finally:
            server.terminate()
            server.wait(10)
    _report(rounds, args)


def _scenario(
    pid: int, name: str, base: str, keys: dict[str, object], args: argparse.Namespace
) -> Figures:
    from pkiforge.client.auth import SigningAuth

    auth = None if name == "unsigned" else SigningAuth(key_id=name, private_key=keys[name])  # type: ignore[arg-type]
    url = base + ("/open" if auth is None else "/hello")
    timing = (args.warmup, args.duration)
    if args.presign:
        # Signed requests each need their own nonce; an unsigned one can be sent repeatedly.
        ready = presign(url, auth, 1 if auth is None else args.presign_count)
        return measure_presigned(pid, url, ready, args.concurrency, timing)
    return measure_live(pid, url, auth, args.concurrency, timing)


def _report(rounds: list[dict[str, Figures]], args: argparse.Namespace) -> None:
    mode = "pre-signed requests, lean client" if args.presign else "signed live by httpx"
    mode += ", verified inline" if args.inline else ", verified in a worker thread"
    print(
        f"\n{mode}; GET, one uvicorn worker (httptools), {args.concurrency} keep-alive clients, "
        f"{len(rounds)} rounds of {args.duration:.0f} s per scenario after {args.warmup:.0f} s "
        f"warm-up, scenario order rotated each round, nonces in Redis, {os.cpu_count()} CPUs "
        "shared by client and server; medians. 'server CPU' is the server process's CPU time "
        "per request; 'by CPU' is unsigned's CPU per request over this one's: the rate ratio "
        "the server would reach with a core of its own\n"
    )
    print(
        f"| {'scenario':<12} | {'req/s':>7} | {'vs unsigned':>11} | {'per round':<16} | "
        f"{'server CPU':>10} | {'by CPU':>6} | {'errors':>6} |"
    )
    print(
        f"| {'-' * 12} | {'-' * 7}:| {'-' * 11}:| {'-' * 16} | {'-' * 10}:| {'-' * 6}:| {'-' * 6}:|"
    )
    for name in SCENARIOS:
        rate = statistics.median(r[name].rate for r in rounds)
        ratios = [r[name].rate / r["unsigned"].rate for r in rounds]
        cpu = statistics.median(r[name].cpu_us for r in rounds)
        by_cpu = statistics.median(r["unsigned"].cpu_us / r[name].cpu_us for r in rounds)
        errors = sum(r[name].errors for r in rounds)
        per_round = ", ".join(f"{x:.0%}" for x in ratios)
        print(
            f"| {name:<12} | {rate:>7.0f} | {statistics.median(ratios):>10.0%} | "
            f"{per_round:<16} | {cpu:>7.0f} µs | {by_cpu:>5.0%} | {errors:>6} |"
        )


if __name__ == "__main__":
    main()
