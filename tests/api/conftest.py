"""Fixtures for the API tests: an in-process app, and real `pkiforge serve` processes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from .helpers import Api, make_api
from .server import Server, make_home, start_server

HTTPS_WHITELIST: dict[str, Any] = {
    "services": [
        {
            "service_id": s,
            "allowed_operations": ["request", "renew", "revoke", "download", "register",
                                   "update", "discover", "list"],
        }
        for s in ("billing", "orders", "orders2")
    ]
    + [
        {
            "service_id": "enrollee",
            "allowed_operations": ["request", "renew"],
            "allowed_names": ["{service_id}.internal"],
        },
        {
            "service_id": "burst",
            "allowed_operations": ["request"],
            "allowed_names": ["*.burst.internal"],
        },
    ]
}  # fmt: skip


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    """A fresh PKI, whitelist and app per test, in-process with a fake identity."""
    made = make_api(tmp_path / "home")
    yield made
    await made.client.aclose()
    made.pki.close()


@pytest.fixture(scope="module")
def https_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`pkiforge serve` over real TLS on a free port (SQLite), trusting 127.0.0.1 as a proxy."""
    home = make_home(
        tmp_path_factory.mktemp("https") / "home",
        HTTPS_WHITELIST,
        {"server": {"trusted_proxies": ["127.0.0.1/32"]}},
    )
    server = start_server(home)
    yield server
    server.stop()
