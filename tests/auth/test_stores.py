"""Key resolvers and caching, nonce stores and failure trackers, in-process and on Redis."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from pkiforge.auth.keys import CachedKeyResolver, InMemoryKeyResolver, KeyStatus, RegisteredKey
from pkiforge.auth.nonces import InMemoryNonceStore, claim_nonce, nonce_key
from pkiforge.auth.ratelimit import (
    FailurePolicy,
    InMemoryFailureTracker,
    RedisFailureTracker,
)
from pkiforge.auth.redis_nonces import RedisNonceStore
from pkiforge.auth.verify import RequestVerifier
from pkiforge.clock import FixedClock
from pkiforge.errors import (
    Conflict,
    IntegrityError,
    InvalidInput,
    NotFound,
    RateLimited,
    StoreUnavailable,
)

from .support import NOW, registered, sign, signer_for

# Registered keys and resolvers


def test_registered_key_computes_and_checks_its_fingerprint() -> None:
    key = registered("client-ed25519", "k1")
    assert len(key.fingerprint) == 64
    with pytest.raises(IntegrityError):
        RegisteredKey(**{**_fields(key), "fingerprint": "00" * 32})
    with pytest.raises(InvalidInput, match="does not fit"):
        RegisteredKey(**{**_fields(key), "fingerprint": "", "algorithm": "rsa-pss-sha512"})


def _fields(key: RegisteredKey) -> dict[str, object]:
    return {name: getattr(key, name) for name in RegisteredKey.__dataclass_fields__}


def test_revocation_lifecycle() -> None:
    resolver = InMemoryKeyResolver([registered("client-ed25519", "k1")])
    with pytest.raises(Conflict):
        resolver.add(registered("client-ed25519", "k1"))
    revoked = resolver.revoke("k1", NOW, "rotated")
    assert (revoked.status, revoked.revoked_at, revoked.revocation_reason) == (
        KeyStatus.REVOKED,
        NOW,
        "rotated",
    )
    with pytest.raises(Conflict):
        resolver.revoke("k1", NOW)
    with pytest.raises(NotFound):
        resolver.revoke("nope", NOW)


def test_cache_sees_a_remote_revocation_within_its_ttl() -> None:
    clock = FixedClock(NOW)
    store = InMemoryKeyResolver([registered("client-ed25519", "k1")])
    cache = CachedKeyResolver(store, clock=clock, ttl_seconds=5)
    assert cache.get("k1").is_active  # type: ignore[union-attr]
    store.revoke("k1", NOW)  # as if another replica revoked it
    clock.advance(dt.timedelta(seconds=4))
    assert cache.get("k1").is_active  # type: ignore[union-attr]
    clock.advance(dt.timedelta(seconds=1))
    assert not cache.get("k1").is_active  # type: ignore[union-attr]


def test_invalidate_makes_the_local_revocation_immediate() -> None:
    clock = FixedClock(NOW)
    store = InMemoryKeyResolver([registered("client-ed25519", "k1")])
    cache = CachedKeyResolver(store, clock=clock)
    assert cache.get("k1").is_active  # type: ignore[union-attr]
    store.revoke("k1", NOW)
    cache.invalidate("k1")
    assert not cache.get("k1").is_active  # type: ignore[union-attr]


def test_cache_remembers_unknown_ids_and_stays_bounded() -> None:
    calls: list[str] = []

    class Counting:
        def get(self, key_id: str) -> RegisteredKey | None:
            calls.append(key_id)
            return None

    cache = CachedKeyResolver(Counting(), clock=FixedClock(NOW), max_entries=3)
    for _ in range(3):
        assert cache.get("ghost") is None
    assert calls == ["ghost"]
    for i in range(10):
        cache.get(f"id-{i}")
    assert len(cache._entries) == 3


# Nonces


def test_in_memory_nonces_refuse_replays_and_expire() -> None:
    clock = FixedClock(NOW)
    store = InMemoryNonceStore(clock=clock)
    assert store.check_and_store("k1", "n1", 10, created=NOW)
    assert not store.check_and_store("k1", "n1", 10, created=NOW)
    assert store.check_and_store("k2", "n1", 10, created=NOW)  # nonces are per key
    assert store.check_and_store("k", "1:n1", 10, created=NOW)  # no collision through ':'
    clock.advance(dt.timedelta(seconds=10))
    assert store.check_and_store("k1", "n1", 10, created=NOW)
    assert len(store) == 1


def test_in_memory_nonces_are_race_free() -> None:
    store = InMemoryNonceStore()
    signed = dt.datetime.now(dt.UTC)
    results: list[bool] = []
    barrier = threading.Barrier(16)

    def attempt() -> None:
        barrier.wait()
        results.append(store.check_and_store("k1", "same", 60, created=signed))

    threads = [threading.Thread(target=attempt) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(True) == 1


def test_full_in_memory_store_refuses_rather_than_forgets() -> None:
    store = InMemoryNonceStore(clock=FixedClock(NOW), max_entries=2)
    store.check_and_store("k", "a", 60, created=NOW)
    store.check_and_store("k", "b", 60, created=NOW)
    with pytest.raises(StoreUnavailable):
        store.check_and_store("k", "c", 60, created=NOW)


@pytest.mark.redis
def test_redis_nonce_replayed_across_two_verifiers_is_refused(
    redis_client: tuple[redis.Redis, str],
) -> None:
    client, prefix = redis_client
    keys = InMemoryKeyResolver([registered("client-ed25519", "key-ed25519")])
    clock = FixedClock(NOW)
    replica_a = RequestVerifier(
        keys=keys, nonces=RedisNonceStore(client, prefix=prefix, clock=clock), clock=clock
    )
    replica_b = RequestVerifier(
        keys=keys, nonces=RedisNonceStore(client, prefix=prefix, clock=clock), clock=clock
    )
    request = sign(signer_for("client-ed25519", "key-ed25519"), "POST", "https://h/x", [], b"{}")
    replica_a.verify(request)
    with pytest.raises(Exception, match="nonce reused"):
        replica_b.verify(request)
    (name,) = list(client.scan_iter(match=f"{prefix}[0-9]*"))  # the nonce, not memory-start
    assert 0 < client.ttl(name) <= 300 + 2 * 30 + 1


@pytest.mark.redis
def test_redis_claims_settle_once_and_abandon_only_their_own_nonce(
    redis_client: tuple[redis.Redis, str],
) -> None:
    client, prefix = redis_client
    store = RedisNonceStore(client, prefix=prefix, clock=FixedClock(NOW))
    name = prefix + nonce_key("k", "n")

    first = claim_nonce(store, "k", "n", 60, NOW)
    second = claim_nonce(store, "k", "n", 60, NOW)  # sent before the first is settled
    assert first.settle() is True
    assert second.settle() is False
    with pytest.raises(RuntimeError):
        first.settle()  # a claim answers once

    # A refused request that did not store the nonce must not delete the one that did.
    loser = claim_nonce(store, "k", "n", 60, NOW)
    loser.abandon()
    assert client.exists(name) == 1

    # A refused request that stored it deletes it again: forged requests leave nothing.
    client.delete(name)
    forged = claim_nonce(store, "k", "n", 60, NOW)
    forged.abandon()
    assert client.exists(name) == 0
    assert claim_nonce(store, "k", "n", 60, NOW).settle() is True


@pytest.mark.redis
def test_redis_claim_outage_raises_at_settle_and_abandon_stays_quiet() -> None:
    dead = redis.Redis(host="127.0.0.1", port=1, retry=Retry(NoBackoff(), 0))
    store = RedisNonceStore(dead, prefix="x:")
    claim = claim_nonce(store, "k", "n", 10, NOW)  # the send failed; nothing is raised yet
    with pytest.raises(StoreUnavailable, match="ConnectionError"):
        claim.settle()
    claim_nonce(store, "k", "n", 10, NOW).abandon()  # the request is refused anyway


def test_stores_without_claims_store_only_when_settled() -> None:
    store = InMemoryNonceStore(clock=FixedClock(NOW))
    claim_nonce(store, "k", "n", 10, NOW).abandon()
    assert len(store) == 0
    claim = claim_nonce(store, "k", "n", 10, NOW)
    assert len(store) == 0  # nothing happens before the signature has verified
    assert claim.settle() is True
    assert claim_nonce(store, "k", "n", 10, NOW).settle() is False


@pytest.mark.redis
def test_redis_outage_is_store_unavailable() -> None:
    dead = redis.Redis(host="127.0.0.1", port=1, retry=Retry(NoBackoff(), 0))
    with pytest.raises(StoreUnavailable, match="ConnectionError"):
        RedisNonceStore(dead, prefix="x:").check_and_store("k", "n", 10, created=NOW)
    with pytest.raises(StoreUnavailable):
        RedisFailureTracker(dead, prefix="x:").check("192.0.2.1")
    with pytest.raises(StoreUnavailable):
        RedisFailureTracker(dead, prefix="x:").record_failure("192.0.2.1")


# Failure tracking


def test_in_process_tracker_blocks_after_n_failures_and_unblocks_after_cooling_off() -> None:
    clock = FixedClock(NOW)
    tracker = InMemoryFailureTracker(
        FailurePolicy(max_failures=3, window_seconds=60, block_seconds=120), clock=clock
    )
    for _ in range(2):
        tracker.record_failure("192.0.2.1")
        tracker.check("192.0.2.1")
    tracker.record_failure("192.0.2.1")
    with pytest.raises(RateLimited) as info:
        tracker.check("192.0.2.1")
    assert info.value.retry_after == 120
    tracker.check("192.0.2.2")  # other addresses are not affected
    clock.advance(dt.timedelta(seconds=119))
    with pytest.raises(RateLimited) as info:
        tracker.check("192.0.2.1")
    assert info.value.retry_after == 1
    clock.advance(dt.timedelta(seconds=1))
    tracker.check("192.0.2.1")


def test_in_process_tracker_window_restarts() -> None:
    clock = FixedClock(NOW)
    tracker = InMemoryFailureTracker(FailurePolicy(3, 60, 120), clock=clock)
    tracker.record_failure("a")
    tracker.record_failure("a")
    clock.advance(dt.timedelta(seconds=60))
    tracker.record_failure("a")  # the first two fell out of the window
    tracker.check("a")


@pytest.mark.redis
def test_redis_tracker_blocks_after_n_failures(redis_client: tuple[redis.Redis, str]) -> None:
    client, prefix = redis_client
    tracker = RedisFailureTracker(client, FailurePolicy(3, 60, 120), prefix=prefix)
    for _ in range(2):
        tracker.record_failure("192.0.2.1")
    tracker.check("192.0.2.1")
    tracker.record_failure("192.0.2.1")
    with pytest.raises(RateLimited) as info:
        tracker.check("192.0.2.1")
    assert 0 < info.value.retry_after <= 120
    tracker.check("192.0.2.2")
    client.delete(f"{prefix}blocked:192.0.2.1")  # what expiry does after 120 s
    tracker.check("192.0.2.1")


@pytest.mark.redis
def test_redis_tracker_counts_concurrent_failures_exactly(
    redis_client: tuple[redis.Redis, str],
) -> None:
    client, prefix = redis_client
    tracker = RedisFailureTracker(client, FailurePolicy(50, 60, 120), prefix=prefix)
    threads = [threading.Thread(target=tracker.record_failure, args=("c",)) for _ in range(49)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert int(client.get(f"{prefix}count:c")) == 49  # type: ignore[arg-type]
    tracker.check("c")
    tracker.record_failure("c")
    with pytest.raises(RateLimited):
        tracker.check("c")
