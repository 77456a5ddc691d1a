"""Fixtures: a fake API behind `httpx.MockTransport` and clients bound to it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pkiforge.client import Identity, PkiClient
from tests.client.fake_api import FakeApi

BASE = "https://pki.test"


@pytest.fixture
def api() -> FakeApi:
    return FakeApi()


@pytest.fixture
def client(api: FakeApi) -> Iterator[PkiClient]:
    with PkiClient(BASE, verify=False, transport=api.transport()) as pki:
        yield pki


@pytest.fixture
def identity(tmp_path: Path) -> Identity:
    return Identity.in_dir(tmp_path / "svc")
