"""Real `pkiforge serve` replicas sharing Redis: a nonce replayed across them is refused."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from pkiforge.client.auth import RequestSigner
from tests.conftest import drop_prefix, redis_or_skip

from .helpers import WHITELIST
from .server import Home, Server, make_home, start_server

ORIGIN = "https://pkiforge.test"  # both replicas sit behind this name (a load balancer)
pytestmark = [pytest.mark.redis, pytest.mark.slow]


@pytest.fixture(scope="module")
def redis_prefix() -> Iterator[str]:
    client = redis_or_skip()
    prefix = f"pkiforge-test-{uuid.uuid4()}:"
    yield prefix
    drop_prefix(client, prefix)
    client.close()


def start(home: Home, name: str, extra: dict[str, str]) -> Server:
    """`pkiforge serve` with extra environment, healthy over TLS or failed."""
    return start_server(home, name, extra)


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
