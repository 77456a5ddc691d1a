"""`/readyz` of a real `pkiforge serve` whose Redis (nonces, failure tracker) goes down and
comes back: not ready while it is down (signed requests would be refused), ready again after."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.auth.redis_server import private_redis

from .helpers import WHITELIST
from .server import make_home, start_server

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def _until(client: httpx.Client, status: int) -> httpx.Response:
    """/readyz once it answers `status` (the probe's outcome is kept for a second)."""
    deadline = time.monotonic() + 20
    while (answer := client.get("/readyz")).status_code != status:
        assert time.monotonic() < deadline, answer.text
        time.sleep(0.2)
    return answer


def test_readyz_says_not_ready_while_redis_is_down(tmp_path: Path) -> None:
    home = make_home(tmp_path / "home", WHITELIST)
    with private_redis(tmp_path) as redis_server:
        server = start_server(home, "redis", {"PKIFORGE_AUTH__REDIS_URL": redis_server.url})
        try:
            with server.client() as client:
                ready = _until(client, 200)
                assert ready.json()["checks"]["redis"] == "ok"

                redis_server.stop()
                down = _until(client, 503)
                assert down.headers["content-type"] == "application/problem+json"
                body = down.json()
                assert body["type"] == "urn:pkiforge:problem:not-ready"
                assert body["checks"]["redis"] == "unavailable"
                assert body["checks"]["database"] == "ok"
                assert "redis unavailable" in body["detail"]
                assert str(redis_server.port) not in down.text  # the host is the log's

                redis_server.start()
                assert _until(client, 200).json()["checks"]["redis"] == "ok"
        finally:
            server.stop()
    log = server.log.read_text()
    assert "not ready: redis unavailable (auth.redis_url: ConnectionError" in log, log
