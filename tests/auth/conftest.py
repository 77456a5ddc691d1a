"""Fixtures for the auth tests."""

from __future__ import annotations

import datetime as dt

import pytest

from pkiforge.auth.keys import InMemoryKeyResolver
from pkiforge.auth.nonces import InMemoryNonceStore
from pkiforge.auth.verify import RequestVerifier, VerifierPolicy
from pkiforge.clock import FixedClock

from .support import CLIENT_KEYS, NOW, registered


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def keys() -> InMemoryKeyResolver:
    return InMemoryKeyResolver([registered(name, key_id, alg) for name, key_id, alg in CLIENT_KEYS])


@pytest.fixture
def nonces(clock: FixedClock) -> InMemoryNonceStore:
    # its memory began an hour ago: before any signature these tests make (a store refuses
    # signatures created before its memory began)
    clock.advance(-dt.timedelta(hours=1))
    store = InMemoryNonceStore(clock=clock)
    clock.advance(dt.timedelta(hours=1))
    return store


@pytest.fixture
def verifier(
    keys: InMemoryKeyResolver, nonces: InMemoryNonceStore, clock: FixedClock
) -> RequestVerifier:
    return RequestVerifier(
        keys=keys, nonces=nonces, clock=clock, policy=VerifierPolicy(accept_legacy=True)
    )
