"""Real `pkiforge serve` replicas sharing Redis: a nonce replayed across them is refused."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from cryptography.hazmat.primitives import serialization

from pkiforge.client.auth import RequestSigner

from .helpers import WHITELIST
from .server import Home, Server, env, free_port, make_home

ORIGIN = "https://pkiforge.test"  # both replicas sit behind this name (a load balancer)
pytestmark = [pytest.mark.redis, pytest.mark.slow]


@pytest.fixture(scope="module")
def redis_prefix() -> Iterator[str]:
    client = redis.Redis(host="127.0.0.1", port=6379, socket_timeout=2)
    try:
        client.ping()
    except redis.exceptions.RedisError as exc:
        pytest.skip(f"Redis is not reachable on 127.0.0.1:6379 ({type(exc).__name__})")
    prefix = f"pkiforge-test-{uuid.uuid4()}:"
    yield prefix
    for name in client.scan_iter(match=f"{prefix}*"):
        client.delete(name)
    client.close()


def start(home: Home, name: str, extra: dict[str, str]) -> Server:
    """`pkiforge serve` with extra environment, healthy over TLS or failed."""
    port = free_port()
    log = home.path / f"{name}-{port}.log"
    cmd = [sys.executable, "-m", "pkiforge.cli", "--home", str(home.path), "serve"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [*cmd, "--port", str(port)], env=env(extra), stdout=out, stderr=subprocess.STDOUT
        )
    server = Server(home, port, proc, log, extra)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited {proc.returncode}: {log.read_text()}")
        try:
            with server.client() as c:
                if c.get("/healthz").status_code == 200:
                    return server
        except httpx.TransportError:
            time.sleep(0.2)
    server.stop()
    raise AssertionError(f"server did not become healthy: {log.read_text()}")


@pytest.fixture(scope="module")
def replicas(
    tmp_path_factory: pytest.TempPathFactory, redis_prefix: str
) -> Iterator[tuple[Home, Server, Server]]:
    home = make_home(tmp_path_factory.mktemp("replicas") / "home", WHITELIST)
    extra = {
        "PKIFORGE_AUTH__REDIS_URL": "redis://127.0.0.1:6379/0",
        "PKIFORGE_AUTH__KEY_PREFIX": redis_prefix,
        "PKIFORGE_AUTH__TRUSTED_ORIGIN": ORIGIN,
    }
    first = start(home, "a", extra)
    try:
        second = start(home, "b", extra)
    except AssertionError:
        first.stop()
        raise
    yield home, first, second
    first.stop()
    second.stop()


def registered_signer(home: Home, folder: Path) -> RequestSigner:
    home.cli("keys", "generate", "--name", "shop", "--out-dir", str(folder), "--force")
    shown = home.cli(
        "keys", "register", "--public-key", str(folder / "shop.pub.pem"), "--name", "shop",
        "--json",
    )  # fmt: skip
    import json

    key_id = json.loads(shown.stdout)["key_id"]
    key = serialization.load_pem_private_key((folder / "shop.key").read_bytes(), None)
    return RequestSigner(key_id=key_id, private_key=key)  # type: ignore[arg-type]


def signed_headers(signer: RequestSigner, path: str) -> dict[str, str]:
    return dict(signer.signature_headers("GET", ORIGIN + path, [], b""))


def test_a_nonce_replayed_on_the_other_replica_is_refused(
    replicas: tuple[Home, Server, Server], tmp_path: Path
) -> None:
    home, first, second = replicas
    signer = registered_signer(home, tmp_path)
    headers = signed_headers(signer, "/api/v1/keys/whoami")
    with first.client() as a, second.client() as b:
        accepted = a.get("/api/v1/keys/whoami", headers=headers)
        assert accepted.status_code == 200, accepted.text
        assert accepted.json()["id"] == signer.key_id
        replayed = b.get("/api/v1/keys/whoami", headers=headers)
        assert (replayed.status_code, replayed.json()["detail"]) == (401, "nonce reused")
        fresh = b.get("/api/v1/keys/whoami", headers=signed_headers(signer, "/api/v1/keys/whoami"))
        assert fresh.status_code == 200  # the other replica accepts its own fresh requests


def test_revocation_on_one_replica_reaches_the_other(
    replicas: tuple[Home, Server, Server], tmp_path: Path
) -> None:
    home, _, second = replicas
    signer = registered_signer(home, tmp_path)
    with second.client() as b:
        headers = signed_headers(signer, "/api/v1/keys/whoami")
        assert b.get("/api/v1/keys/whoami", headers=headers).status_code == 200
        home.cli("keys", "revoke", "--reason", "leaked", "--", signer.key_id)
        deadline = time.monotonic() + 30  # the cache TTL is 5 s; allow a slow machine
        while time.monotonic() < deadline:
            headers = signed_headers(signer, "/api/v1/keys/whoami")
            refused = b.get("/api/v1/keys/whoami", headers=headers)
            if refused.status_code == 401:
                break
            time.sleep(0.5)
        assert (refused.status_code, refused.json()["detail"]) == (401, "key revoked")
