"""Fixtures of the scheduler tests: a PKI in a temporary home with a FixedClock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pkiforge.clock import FixedClock
from pkiforge.wiring import Pki
from tests.ca.helpers import NOW, make_pki


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def pki(tmp_path: Path, clock: FixedClock) -> Iterator[Pki]:
    """A root (key online) + `services` intermediate, P-256, FixedClock at NOW."""
    p = make_pki(tmp_path / "home", clock=clock)
    yield p
    p.close()
