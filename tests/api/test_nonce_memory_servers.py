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

from pkiforge.auth.nonces import MEMORY_RESET
from pkiforge.client.auth import RequestSigner
from tests.auth.redis_server import private_redis

from .helpers import WHITELIST
from .server import Home, make_home, start_server

PATH = "/api/v1/keys/whoami"
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


def signed_headers(signer: RequestSigner) -> dict[str, str]:
    return dict(signer.signature_headers("GET", ORIGIN + PATH, [], b""))


def next_second() -> None:
    """Sleep into the next whole second: `created` has whole seconds, and a signature made in
    the second the memory began again may be older than it."""
    time.sleep(1.01 - time.time() % 1)


def answer(client: httpx.Client, headers: dict[str, str]) -> httpx.Response:
    """The answer past the 503s of connections to Redis kept from before its restart."""
    for _ in range(10):
        response = client.get(PATH, headers=headers)
        if response.status_code != 503:
            return response
    raise AssertionError(f"still 503: {response.text}")


@pytest.mark.redis
def test_a_request_is_not_accepted_again_after_redis_restarts(tmp_path: Path) -> None:
    (tmp_path / "redis").mkdir()
    with private_redis(tmp_path / "redis") as redis_server:
        home = make_home(tmp_path / "home", WHITELIST)
        extra = {"PKIFORGE_AUTH__REDIS_URL": redis_server.url, "PKIFORGE_AUTH__TRUSTED_ORIGIN": ORIGIN}
        server = start_server(home, "a", extra)
        try:
            signer = registered_signer(home, tmp_path)
            headers = signed_headers(signer)
            with server.client() as client:
                assert answer(client, headers).status_code == 200
                redis_server.restart()  # without persistence: every nonce is gone
                replay = answer(client, headers)
                assert (replay.status_code, replay.json()["detail"]) == (401, MEMORY_RESET)
                assert replay.headers["content-type"] == "application/problem+json"
                next_second()
                fresh = answer(client, signed_headers(signer))
                assert fresh.status_code == 200, fresh.text
                assert answer(client, headers).status_code == 401  # still refused
        finally:
            server.stop()


def _copy(source: Path, target: Path) -> None:
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)


def test_a_request_is_not_accepted_again_after_the_database_is_restored(tmp_path: Path) -> None:
    home = make_home(tmp_path / "home", WHITELIST)
    database, backup = home.path / "pkiforge.db", tmp_path / "backup.db"
    extra = {"PKIFORGE_AUTH__NONCE_STORE": "database", "PKIFORGE_AUTH__TRUSTED_ORIGIN": ORIGIN}
    signer = registered_signer(home, tmp_path)
    server = start_server(home, "a", extra)
    try:
        _copy(database, backup)  # the online backup docs/operations.md describes
        next_second()
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
            assert (replay.status_code, replay.json()["detail"]) == (401, MEMORY_RESET)
            next_second()
            fresh = client.get(PATH, headers=signed_headers(signer))
            assert fresh.status_code == 200, fresh.text
    finally:
        server.stop()
