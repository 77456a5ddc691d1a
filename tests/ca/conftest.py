"""Fixtures for the CA core tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pkiforge.clock import FixedClock
from pkiforge.wiring import Pki

from .helpers import NOW, make_pki


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def pki(tmp_path: Path, clock: FixedClock) -> Iterator[Pki]:
    """A fresh root + `services` intermediate (P-256) in a temporary home, FixedClock at NOW."""
    p = make_pki(tmp_path / "home", clock=clock)
    yield p
    p.close()


@pytest.fixture(scope="module")
def shared_pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pki]:
    """One PKI per module for tests that only issue and read."""
    p = make_pki(tmp_path_factory.mktemp("shared") / "home", clock=FixedClock(NOW))
    yield p
    p.close()
