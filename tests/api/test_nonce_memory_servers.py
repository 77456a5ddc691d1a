"""A real `pkiforge serve` does not accept a signed request twice when its nonce store lost its
memory: Redis restarted without persistence, or the SQLite database restored from a copy."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization

from pkiforge.client.auth import RequestSigner
from tests.auth.redis_server import private_redis

from .helpers import WHITELIST
from .server import Home, make_home, start_server

PATH = "/api/v1/keys/whoami"
MEMORY_RESET = "nonce memory was reset; sign again"  # the 401's detail, as clients see it
ORIGIN = "https://pkiforge.test"  # the servers sit behind this name, so a request fits each
pytestmark = pytest.mark.slow


def registered_signer(home: Home, folder: Path) -> RequestSigner:
    home.cli("keys", "generate", "--name", "shop", "--out-dir", str(folder), "--force")
    shown = home.cli(
        "keys", "register", "--public-key", str(folder / "shop.pub.pem"), "--name", "shop",
        "--json",
    )  # fmt: skip
    key = serialization.load_pem_private_key((folder / "shop.key").read_bytes(), None)
    return RequestSigner(key_id=json.loads(shown.stdout)["key_id"], private_key=key)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> tuple[Home, RequestSigner]:
    """A data directory, and a client whose signing key it has registered."""
    folder = tmp_path_factory.mktemp("nonce-memory")
    home = make_home(folder / "home", WHITELIST)
    return home, registered_signer(home, folder)


def signed_headers(signer: RequestSigner) -> dict[str, str]:
    return dict(signer.signature_headers("GET", ORIGIN + PATH, [], b""))


def next_second() -> None:
    """Sleep into the next whole second: `created` has whole seconds, and a signature made in
    the second the memory began again may be older than it."""
    time.sleep(1.01 - time.time() % 1)


def answer(client: httpx.Client, headers: dict[str, str]) -> httpx.Response:
    """The answer, never a 503: the first request after a Redis restart gets the true one
    (connections kept from before it are stale, and retried once on a new one)."""
    response = client.get(PATH, headers=headers)
    assert response.status_code != 503, response.text
    return response


@pytest.mark.redis
def test_a_request_is_not_accepted_again_after_redis_restarts(
    tmp_path: Path, shop: tuple[Home, RequestSigner]
) -> None:
    home, signer = shop
    with private_redis(tmp_path, "--maxmemory-policy", "allkeys-lru") as redis_server:
        extra = {"PKIFORGE_AUTH__REDIS_URL": redis_server.url}
        server = start_server(home, "redis", {**extra, "PKIFORGE_AUTH__TRUSTED_ORIGIN": ORIGIN})
        try:
            next_second()  # the memory began as the server started (in ms)
            headers = signed_headers(signer)
            with server.client() as client:
                first = answer(client, headers)
                assert first.status_code == 200, first.text
                redis_server.restart()  # without persistence: every nonce is gone
                replay = answer(client, headers)
                assert replay.status_code == 401, f"accepted twice: {replay.text}"
                assert replay.json()["detail"] == MEMORY_RESET
                assert replay.headers["content-type"] == "application/problem+json"
                next_second()
                fresh = answer(client, signed_headers(signer))
                assert fresh.status_code == 200, fresh.text
                assert answer(client, headers).status_code == 401  # still refused
        finally:
            server.stop()
    # the operator is told at start that this Redis may evict nonces
    assert "maxmemory-policy is allkeys-lru, not noeviction" in server.log.read_text()


def _copy(source: Path, target: Path) -> None:
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)


@pytest.mark.parametrize("store", ["database", "memory"])
def test_a_request_is_not_accepted_again_after_a_restart_on_a_restored_database(
    tmp_path: Path, shop: tuple[Home, RequestSigner], store: str
) -> None:
    """The database store after its table went back to a copy; the in-process store, whose
    memory is the process's, after any restart."""
    home, signer = shop
    database, backup = home.path / "pkiforge.db", tmp_path / "backup.db"
    extra = {"PKIFORGE_AUTH__NONCE_STORE": store, "PKIFORGE_AUTH__TRUSTED_ORIGIN": ORIGIN}
    server = start_server(home, "a", extra)
    try:
        _copy(database, backup)  # the online backup docs/operations.md describes
        headers = signed_headers(signer)
        with server.client() as client:
            assert client.get(PATH, headers=headers).status_code == 200
            assert client.get(PATH, headers=headers).status_code == 401
    finally:
        server.stop()
    _copy(backup, database)  # restored: the nonce of the accepted request is gone
    server = start_server(home, "b", extra)
    try:
        with server.client() as client:
            replay = client.get(PATH, headers=headers)
            assert replay.status_code == 401, f"accepted twice: {replay.text}"
            assert replay.json()["detail"] == MEMORY_RESET
            fresh = client.get(PATH, headers=signed_headers(signer))
            assert fresh.status_code == 200, fresh.text
    finally:
        server.stop()
