"""Requests per second to one small endpoint, unsigned and RFC 9421 signed, in one run.

    .venv/bin/python bench/signing.py [--concurrency 16] [--duration 10] [--redis URL]

A tiny FastAPI app runs under uvicorn (httptools, one worker) on loopback with the
three-line `SignatureAuthMiddleware` integration and the Redis nonce store; `/open` is exempt
and `/hello` is protected; both return the same JSON. The client (another process) keeps one
keep-alive connection per worker and signs every request (Ed25519, ECDSA P-256, RSA-PSS
2048) with `SigningAuth`, a fresh nonce each time. Prints a table and the ratios.

On two CPUs the Python client signing live saturates a core before the server does, so that
figure is mostly the client's cost. `--presign` signs every request before the clock starts
(each with its own nonce and `created`, well inside the 300 s window) and sends them as they
are: the figure is what the server can verify. The README reports both.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import deque
from pathlib import Path

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

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
    ready: deque[httpx.Request] | None,
) -> None:
    start, stop = window
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        while (t0 := time.perf_counter()) < stop:
            if ready is not None:
                if not ready:
                    counts[2] += 1  # ran out of pre-signed requests: the figure is a floor
                    return
                response = await client.send(ready.popleft())
            else:
                response = await client.get(url, auth=auth) if auth else await client.get(url)
            if t0 >= start:
                counts[0 if response.status_code == 200 else 1] += 1


def presign(url: str, auth: httpx.Auth | None, count: int) -> deque[httpx.Request]:
    """`count` requests, each signed now with its own nonce (unsigned ones built alike)."""
    ready: deque[httpx.Request] = deque()
    for _ in range(count):
        request = httpx.Request("GET", url)
        ready.append(next(auth.sync_auth_flow(request)) if auth else request)
    return ready


async def measure(
    url: str,
    auth: httpx.Auth | None,
    concurrency: int,
    timing: tuple[float, float],
    ready: deque[httpx.Request] | None = None,
) -> tuple[float, int]:
    """Requests per second after warm-up, and the number of non-200 answers."""
    warmup, duration = timing
    counts = [0, 0, 0]
    now = time.perf_counter()
    window = (now + warmup, now + warmup + duration)
    await asyncio.gather(*[_worker(url, auth, window, counts, ready) for _ in range(concurrency)])
    if counts[2]:
        print(f"warning: {url} ran out of pre-signed requests; raise --presign-count")
    return counts[0] / duration, counts[1]


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
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument(
        "--presign",
        action="store_true",
        help="sign every request before timing: measure the server alone",
    )
    parser.add_argument(
        "--presign-count",
        type=int,
        default=20000,
        help="pre-signed requests per scenario (warm-up included)",
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
    from pkiforge.client.auth import SigningAuth

    keys = _keys()
    prefix = f"pkiforge-bench-{uuid.uuid4()}:"
    with tempfile.TemporaryDirectory() as tmp:
        keys_file = Path(tmp) / "keys.json"
        keys_file.write_text(json.dumps({name: _public_pem(k) for name, k in keys.items()}))
        port = _free_port()
        cmd = [sys.executable, __file__, "--serve", str(port), "--keys-file", str(keys_file)]
        cmd += ["--redis", args.redis, "--prefix", prefix, *(["--inline"] if args.inline else [])]
        server = subprocess.Popen(cmd, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            base = f"http://127.0.0.1:{port}"
            _wait(base + "/open")
            results: dict[str, tuple[float, int]] = {}
            for name in SCENARIOS:
                auth = (
                    None if name == "unsigned" else SigningAuth(key_id=name, private_key=keys[name])
                )  # type: ignore[arg-type]
                url = base + ("/open" if auth is None else "/hello")
                ready = presign(url, auth, args.presign_count) if args.presign else None
                results[name] = asyncio.run(
                    measure(url, auth, args.concurrency, (args.warmup, args.duration), ready)
                )
        finally:
            server.terminate()
            server.wait(10)
    _report(results, args)


def _report(results: dict[str, tuple[float, int]], args: argparse.Namespace) -> None:
    base = results["unsigned"][0]
    mode = "pre-signed requests (server cost)" if args.presign else "signed live by the client"
    mode += ", verified inline" if args.inline else ", verified in a worker thread"
    print(
        f"\n{mode}; GET, one uvicorn worker (httptools), {args.concurrency} keep-alive clients, "
        f"{args.duration:.0f} s each after {args.warmup:.0f} s warm-up, nonces in Redis, "
        f"{os.cpu_count()} CPUs shared by client and server\n"
    )
    print(f"| {'scenario':<12} | {'req/s':>8} | {'vs unsigned':>11} | {'errors':>6} |")
    print(f"| {'-' * 12} | {'-' * 8}:| {'-' * 11}:| {'-' * 6}:|")
    for name, (rate, errors) in results.items():
        print(f"| {name:<12} | {rate:>8.0f} | {rate / base:>10.0%} | {errors:>6} |")


if __name__ == "__main__":
    main()
