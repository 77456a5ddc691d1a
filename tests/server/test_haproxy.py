"""Three `pkiforge serve` replicas on one PostgreSQL and Redis behind HAProxy, run with the
shipped deploy/haproxy/haproxy.cfg (its addresses from the environment): issuance and OCSP
load from several clients while one replica is killed with SIGKILL. Clients that retry see
no error, every certificate a client received is in the store once, the audit chain verifies
(`pkiforge audit verify`), and the audit trail names the clients' address, not HAProxy's."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp

from tests.api.conftest import HTTPS_WHITELIST
from tests.api.helpers import make_csr
from tests.api.proxied import healthy_via_balancer
from tests.api.server import Home, Server, free_port, make_home, start_server
from tests.conftest import _empty_postgres

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.skipif(shutil.which("haproxy") is None, reason="needs haproxy (Debian package)"),
]
CONFIG = Path(__file__).parents[2] / "deploy" / "haproxy" / "haproxy.cfg"
REDIS_URL = "redis://127.0.0.1:6379/0"
BALANCER = "127.0.0.1"  # where HAProxy connects to the replicas from
CLIENT = "127.0.0.3"  # where the load's clients connect to HAProxy from
CLIENTS = 4
LOAD_SECONDS = 3.0
ATTEMPTS = 5


@dataclass
class Load:
    """What the clients got: issued serials, OCSP answers, and errors after retrying."""

    serials: list[str] = field(default_factory=list)
    ocsp_good: int = 0
    retries: int = 0
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, postgres_url: str) -> Home:
    redis = pytest.importorskip("redis")
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except (redis.RedisError, OSError) as exc:
        pytest.skip(f"Redis at 127.0.0.1:6379 cannot be reached: {exc}")
    _empty_postgres(postgres_url)
    config = {
        "redis_url": REDIS_URL,
        "rate_limits": {
            "issuance_limit": 100000,
            "key_prefix": f"pkiforge-test-{secrets.token_hex(6)}:",
        },
        "server": {"proxy_protocol": {"trusted": [f"{BALANCER}/32"]}},
    }
    path = tmp_path_factory.mktemp("haproxy") / "home"
    return make_home(path, HTTPS_WHITELIST, config, postgres_url)


@pytest.fixture(scope="module")
def replicas(home: Home) -> Iterator[list[Server]]:
    with ThreadPoolExecutor(3) as pool:
        futures = [
            pool.submit(start_server, home, f"r{i}", healthy=healthy_via_balancer(BALANCER))
            for i in (1, 2, 3)
        ]
        started = [f.result() for f in futures]
    yield started
    for server in started:
        if server.proc.poll() is None:
            server.stop()


@contextlib.contextmanager
def haproxy(home: Home, replicas: list[Server]) -> Iterator[tuple[int, Path]]:
    """HAProxy on a free port with the shipped config; (its port, its log)."""
    port = free_port()
    env = {
        **os.environ,
        "PKIFORGE_LB_BIND": f"127.0.0.1:{port}",
        "PKIFORGE_CA_FILE": str(home.root),
        **{f"PKIFORGE_REPLICA{i}": f"127.0.0.1:{s.port}" for i, s in enumerate(replicas, 1)},
    }
    check = subprocess.run(
        ["haproxy", "-c", "-f", str(CONFIG)], env=env, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    log = home.path / "haproxy.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            ["haproxy", "-db", "-f", str(CONFIG)], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 30
        while True:  # up once it answers /readyz through a replica
            assert proc.poll() is None, log.read_text()
            try:
                with httpx.Client(verify=ssl.create_default_context(cafile=str(home.root))) as c:
                    if c.get(f"https://127.0.0.1:{port}/readyz").status_code == 200:
                        break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        yield port, log
    finally:
        proc.terminate()
        proc.wait(10)


def ocsp_request(cert: x509.Certificate, issuer: x509.Certificate) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1())
    return builder.build().public_bytes(Encoding.DER)


def client_loop(
    port: int, root: Path, cert: tuple[str, str], n: int, until: float, load: Load
) -> None:
    """Issue a certificate, ask OCSP about it, repeat; retry a request whose connection
    broke (a new connection each time, as a client library's retry would)."""
    url = f"https://127.0.0.1:{port}"
    i = 0
    while time.monotonic() < until:
        i += 1
        cn = f"c{n}-{i}.burst.internal"
        issued = call(url, root, cert, load, "post", "/api/v1/certificates/request",
                      json={"csr": make_csr(cn, [cn])})  # fmt: skip
        if issued is None:
            continue
        if issued.status_code != 201:
            with load.lock:
                load.errors.append(f"issue {cn}: {issued.status_code} {issued.text}")
            continue
        body = issued.json()
        with load.lock:
            load.serials.append(body["serial"])
        leaf = x509.load_pem_x509_certificate(body["certificate_pem"].encode())
        issuer = x509.load_pem_x509_certificates(body["chain_pem"].encode())[0]
        answer = call(url, root, None, load, "post", "/api/v1/ocsp",
                      content=ocsp_request(leaf, issuer),
                      headers={"content-type": "application/ocsp-request"})  # fmt: skip
        if answer is None:
            continue
        status = ocsp.load_der_ocsp_response(answer.content)
        if status.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL or (
            status.certificate_status != ocsp.OCSPCertStatus.GOOD
        ):
            with load.lock:
                load.errors.append(f"ocsp {body['serial']}: {status.response_status}")
            continue
        with load.lock:
            load.ocsp_good += 1


def call(
    url: str,
    root: Path,
    cert: tuple[str, str] | None,
    load: Load,
    method: str,
    path: str,
    **kwargs: object,
) -> httpx.Response | None:
    ctx = ssl.create_default_context(cafile=str(root))
    if cert is not None:
        ctx.load_cert_chain(*cert)
    transport = httpx.HTTPTransport(verify=ctx, local_address=CLIENT)
    last = ""
    for _ in range(ATTEMPTS):
        try:
            with httpx.Client(base_url=url, transport=transport, timeout=20) as c:
                return c.request(method, path, **kwargs)  # type: ignore[arg-type]
        except httpx.TransportError as exc:
            last = repr(exc)
            with load.lock:
                load.retries += 1
            time.sleep(0.2)
    with load.lock:
        load.errors.append(f"{path}: no answer after {ATTEMPTS} attempts: {last}")
    return None


def test_failover_under_load(home: Home, replicas: list[Server]) -> None:
    cert = home.client_cert("burst", "x.burst.internal")
    load = Load()
    with haproxy(home, replicas) as (port, log):
        start = time.monotonic()
        until = start + LOAD_SECONDS
        threads = [
            threading.Thread(target=client_loop, args=(port, home.root, cert, n, until, load))
            for n in range(CLIENTS)
        ]
        for t in threads:
            t.start()
        time.sleep(LOAD_SECONDS / 3)
        victim = replicas[1]
        os.kill(victim.proc.pid, signal.SIGKILL)
        victim.proc.wait(10)
        for t in threads:
            t.join(120)
        deadline = time.monotonic() + 15  # its checks run every 0.5-1 s; a busy machine lags
        while "replica2 is DOWN" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        haproxy_log = log.read_text()
    assert not load.errors, load.errors[:5]
    assert load.serials and load.ocsp_good == len(load.serials)
    assert len(set(load.serials)) == len(load.serials)
    # every certificate a client received is in the store, once
    listed = json.loads(home.cli("cert", "list", "--json", "--limit", "10000").stdout)
    stored = [c["serial"] for c in listed]
    assert len(stored) == len(set(stored))
    assert set(load.serials) <= set(stored)
    # the audit chain holds, and it names the clients, not the balancer
    home.cli("audit", "verify")
    entries = json.loads(
        home.cli("audit", "list", "--action", "cert.issue", "--limit", "100000", "--json").stdout
    )
    by_serial = {e["subject"]: e["address"] for e in entries}
    assert {by_serial[s] for s in load.serials} == {CLIENT}
    # HAProxy saw the replica go: its health check (a PROXY LOCAL header, then TLS, then
    # /readyz) took it out of rotation
    assert "replica2 is DOWN" in haproxy_log, haproxy_log[-2000:]
