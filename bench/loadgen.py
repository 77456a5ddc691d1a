"""A small closed-loop HTTPS load generator: N workers, keep-alive connections, client certs.

Each worker sends one request at a time on its own connection for a fixed duration (after a
warm-up) and records every latency. Bounded in time and count; talks to loopback only.
"""

from __future__ import annotations

import asyncio
import ssl
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx


@dataclass
class Target:
    """One server to load: URL, body, and the client certificate it wants."""

    name: str
    url: str
    body: bytes
    ca_file: str
    cert_file: str
    key_file: str
    ok: Callable[[httpx.Response], bool] = lambda r: r.status_code in (200, 201)
    headers: dict[str, str] = field(default_factory=lambda: {"content-type": "application/json"})


@dataclass
class Result:
    name: str
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        if len(self.latencies_ms) < 2:
            return self.latencies_ms[0]
        return statistics.quantiles(self.latencies_ms, n=100, method="inclusive")[int(q) - 1]


def _ssl(target: Target) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=target.ca_file)
    ctx.load_cert_chain(target.cert_file, target.key_file)
    return ctx


async def _worker(
    target: Target,
    ctx: ssl.SSLContext,
    start: float,
    stop: float,
    out: list[float],
    errors: list[int],
    max_requests: int,
) -> None:
    async with httpx.AsyncClient(
        verify=ctx, http2=False, timeout=30.0, limits=httpx.Limits(max_connections=1)
    ) as client:
        sent = 0
        while sent < max_requests:
            t0 = time.perf_counter()
            if t0 >= stop:
                return
            try:
                response = await client.post(
                    target.url, content=target.body, headers=target.headers
                )
                good = target.ok(response)
            except httpx.HTTPError:
                good = False
            t1 = time.perf_counter()
            sent += 1
            if t0 >= start:  # after warm-up
                if good:
                    out.append((t1 - t0) * 1000)
                else:
                    errors.append(1)


async def _run(
    target: Target, concurrency: int, warmup: float, duration: float, max_requests: int
) -> Result:
    ctx = _ssl(target)
    now = time.perf_counter()
    start, stop = now + warmup, now + warmup + duration
    latencies: list[float] = []
    errors: list[int] = []
    await asyncio.gather(
        *[
            _worker(target, ctx, start, stop, latencies, errors, max_requests)
            for _ in range(concurrency)
        ]
    )
    return Result(target.name, len(latencies), len(errors), duration, latencies)


def run(
    target: Target,
    *,
    concurrency: int = 16,
    warmup: float = 3.0,
    duration: float = 15.0,
    max_requests: int = 100_000,
) -> Result:
    """Load `target` and return its figures."""
    return asyncio.run(_run(target, concurrency, warmup, duration, max_requests))
