"""Fixtures for the API tests (in-process; the real-HTTPS fixtures are in server.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from .helpers import Api, make_api


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    """A fresh PKI, whitelist and app per test."""
    made = make_api(tmp_path / "home")
    yield made
    await made.client.aclose()
    made.pki.close()
