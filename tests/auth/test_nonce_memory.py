"""No replay after a nonce store loses its memory: Redis restarted without persistence, flushed
or evicting; a database restored from an older copy or emptied; a process restarted."""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from pkiforge.auth.canonical import HttpRequest
from pkiforge.auth.keys import InMemoryKeyResolver
from pkiforge.auth.nonces import MEMORY_RESET, InMemoryNonceStore
from pkiforge.auth.redis_nonces import RedisNonceStore
from pkiforge.auth.verify import RequestVerifier
from pkiforge.clock import FixedClock
from pkiforge.errors import AuthenticationFailed, StoreUnavailable
from pkiforge.store.db import SqlStore
from pkiforge.store.nonces import SqlNonceStore

from .redis_server import PrivateRedis, private_redis
from .support import sign, signer_for

PREFIX = "pkiforge:auth:nonce:"
SECOND = dt.timedelta(seconds=1)
ACCEPTED = "accepted"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[PrivateRedis]:
    with private_redis(tmp_path) as started:
        yield started


def signed(clock: FixedClock) -> HttpRequest:
    """A request signed now by `clock`, with a nonce of its own."""
    return sign(signer_for("client-ed25519", "key-ed25519", clock=clock), "POST", body=b"{}")


def outcome(verifier: RequestVerifier, request: HttpRequest) -> str:
    """`accepted` or the refusal's reason; the first call after a Redis restart answers too
    (a connection kept from before it is stale: redis_calls.py retries it once)."""
    try:
        verifier.verify(request)
    except StoreUnavailable as exc:
        raise AssertionError(f"the nonce store did not answer: {exc}") from exc
    except AuthenticationFailed as exc:
        return exc.message
    return ACCEPTED


# Redis

LOSSES: dict[str, Callable[[PrivateRedis], object]] = {
    "restart without persistence": PrivateRedis.restart,
    "FLUSHALL": lambda server: server.client().flushall(),
    "memory-start evicted": lambda server: server.client().delete(PREFIX + "memory-start"),
}


@pytest.mark.redis
@pytest.mark.parametrize("loss", LOSSES, ids=list(LOSSES))
def test_a_request_accepted_before_redis_lost_its_memory_is_refused_after(
    server: PrivateRedis, keys: InMemoryKeyResolver, clock: FixedClock, loss: str
) -> None:
    store = RedisNonceStore(server.client(), prefix=PREFIX, clock=clock)
    store.open()
    verifier = RequestVerifier(keys=keys, nonces=store, clock=clock)
    request = signed(clock)
    assert outcome(verifier, request) == ACCEPTED
    clock.advance(SECOND)
    LOSSES[loss](server)
    assert outcome(verifier, request) == MEMORY_RESET  # not accepted a second time
    fresh = signed(clock)  # a client signing again is accepted at once
    assert outcome(verifier, fresh) == ACCEPTED
    assert outcome(verifier, fresh) == "nonce reused"
    assert outcome(verifier, request) == MEMORY_RESET  # and stays refused


@pytest.mark.redis
@pytest.mark.parametrize(
    ("persistence", "crash"),
    [(("--appendonly", "yes", "--appendfsync", "always"), False), (("--save", "3600 1"), True)],
    ids=["AOF, clean restart", "crash, back from a snapshot taken before the request"],
)
def test_any_redis_restart_begins_a_new_memory_whatever_it_kept(
    tmp_path: Path,
    keys: InMemoryKeyResolver,
    clock: FixedClock,
    persistence: tuple[str, ...],
    crash: bool,
) -> None:
    """pkiforge cannot tell what a restart lost (an RDB snapshot is older than the last
    writes, AOF everysec may lose a second), so every restart counts as a loss."""
    with private_redis(tmp_path, *persistence) as server:
        client = server.client()
        store = RedisNonceStore(client, prefix=PREFIX, clock=clock)
        store.open()
        client.save()  # the snapshot holds the memory's start, and no nonce yet
        verifier = RequestVerifier(keys=keys, nonces=store, clock=clock)
        request = signed(clock)
        assert outcome(verifier, request) == ACCEPTED
        clock.advance(SECOND)
        server.restart(crash=crash)
        assert client.exists(PREFIX + "memory-start") == 1  # it came back from the disk
        assert outcome(verifier, request) == MEMORY_RESET
        assert outcome(verifier, signed(clock)) == ACCEPTED


@pytest.mark.redis
def test_the_memory_check_is_part_of_every_claim_not_only_of_the_start(
    server: PrivateRedis, keys: InMemoryKeyResolver, clock: FixedClock
) -> None:
    """No `open()`: the first claim begins the memory; a later loss is caught by a claim."""
    client = server.client()
    verifier = RequestVerifier(
        keys=keys, nonces=RedisNonceStore(client, prefix=PREFIX, clock=clock), clock=clock
    )
    first = signed(clock)
    assert outcome(verifier, first) == ACCEPTED  # signed as the memory began: not before it
    start, run = (client.get(PREFIX + "memory-start") or b"").decode().split(":")
    assert (int(start), run) == (int(clock.now().timestamp() * 1000), client.info()["run_id"])
    clock.advance(SECOND)
    second = signed(clock)
    assert outcome(verifier, second) == ACCEPTED
    clock.advance(SECOND)
    client.delete(PREFIX + "memory-start")
    assert outcome(verifier, second) == MEMORY_RESET
    assert outcome(verifier, first) == MEMORY_RESET


@pytest.mark.redis
@pytest.mark.parametrize(
    ("policy", "warned"),
    [("noeviction", False), ("allkeys-lru", True), ("volatile-ttl", True)],
    ids=["noeviction", "allkeys-lru", "volatile-ttl"],
)
def test_start_warns_unless_redis_never_evicts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, policy: str, warned: bool
) -> None:
    with private_redis(tmp_path, "--maxmemory-policy", policy) as server:
        store = RedisNonceStore(server.client(), prefix=PREFIX)
        with caplog.at_level(logging.INFO, logger="pkiforge.auth"):
            store.open()
        assert server.client().exists(PREFIX + "memory-start") == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert bool(warnings) is warned
    if warned:
        assert f"maxmemory-policy is {policy}, not noeviction" in warnings[0]


@pytest.mark.redis
def test_start_warns_when_it_may_not_read_the_policy(
    server: PrivateRedis, caplog: pytest.LogCaptureFixture
) -> None:
    server.client().execute_command(
        "ACL", "SETUSER", "app", "on", ">app-password", "~*", "+@all", "-config"
    )
    store = RedisNonceStore(server.client(username="app", password="app-password"), prefix=PREFIX)
    with caplog.at_level(logging.WARNING, logger="pkiforge.auth"):
        store.open()
    assert "cannot read Redis's maxmemory-policy (NoPermissionError)" in caplog.text


# The database


def _copy(source: Path, target: Path) -> None:
    """SQLite's online backup, as docs/operations.md says to take (and restore) copies."""
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)


def test_a_database_restored_under_a_running_process_refuses_what_it_forgot(
    tmp_path: Path, keys: InMemoryKeyResolver, clock: FixedClock
) -> None:
    live, backup = tmp_path / "live.db", tmp_path / "backup.db"
    store = SqlStore.open(f"sqlite:///{live}")
    try:
        nonces = SqlNonceStore(store, clock=clock)
        nonces.open()
        verifier = RequestVerifier(keys=keys, nonces=nonces, clock=clock)
        assert outcome(verifier, signed(clock)) == ACCEPTED
        _copy(live, backup)
        clock.advance(SECOND)
        request = signed(clock)  # accepted after the backup: its nonce expires after any in it
        assert outcome(verifier, request) == ACCEPTED
        clock.advance(SECOND)
        _copy(backup, live)  # restored: the table no longer holds the request's nonce
        assert outcome(verifier, request) == MEMORY_RESET
        fresh = signed(clock)
        assert outcome(verifier, fresh) == ACCEPTED
        assert outcome(verifier, fresh) == "nonce reused"
        assert outcome(verifier, request) == MEMORY_RESET
    finally:
        store.close()


def test_a_process_started_on_a_restored_database_refuses_older_signatures(
    tmp_path: Path, keys: InMemoryKeyResolver, clock: FixedClock
) -> None:
    live, backup = tmp_path / "live.db", tmp_path / "backup.db"
    store = SqlStore.open(f"sqlite:///{live}")
    try:
        SqlNonceStore(store, clock=clock).open()
        _copy(live, backup)
        verifier = RequestVerifier(keys=keys, nonces=SqlNonceStore(store, clock=clock), clock=clock)
        request = signed(clock)
        assert outcome(verifier, request) == ACCEPTED
    finally:
        store.close()
    clock.advance(SECOND)
    _copy(backup, live)  # with no process running: nothing in the copy says it is old
    store = SqlStore.open(f"sqlite:///{live}")
    try:
        nonces = SqlNonceStore(store, clock=clock)  # a process starting
        nonces.open()
        verifier = RequestVerifier(keys=keys, nonces=nonces, clock=clock)
        assert outcome(verifier, request) == MEMORY_RESET
        assert outcome(verifier, signed(clock)) == ACCEPTED
    finally:
        store.close()


@pytest.mark.parametrize(
    "loss",
    ["DELETE FROM nonces", "DELETE FROM nonces WHERE nonce_key <> 'memory-start'"],
    ids=["table emptied", "nonces lost, memory start kept"],
)
def test_an_emptied_nonce_table_is_noticed_on_the_next_write(
    store_url: str, keys: InMemoryKeyResolver, clock: FixedClock, loss: str
) -> None:
    store = SqlStore.open(store_url)
    try:
        nonces = SqlNonceStore(store, clock=clock)
        nonces.open()
        verifier = RequestVerifier(keys=keys, nonces=nonces, clock=clock)
        request = signed(clock)
        assert outcome(verifier, request) == ACCEPTED
        clock.advance(SECOND)
        with store.transaction() as tx:
            tx.session.execute(text(loss))
        assert outcome(verifier, request) == MEMORY_RESET
        assert outcome(verifier, signed(clock)) == ACCEPTED
    finally:
        store.close()


def test_other_processes_see_the_new_memory_start(
    store_url: str, keys: InMemoryKeyResolver, clock: FixedClock
) -> None:
    """One process notices the loss; the others refuse old signatures from then on too."""
    store = SqlStore.open(store_url)
    try:
        first, second = SqlNonceStore(store, clock=clock), SqlNonceStore(store, clock=clock)
        first.open()
        request = signed(clock)
        assert outcome(RequestVerifier(keys=keys, nonces=first, clock=clock), request) == ACCEPTED
        clock.advance(SECOND)
        with store.transaction() as tx:
            tx.session.execute(text("DELETE FROM nonces"))
        other = signed(clock)
        assert outcome(RequestVerifier(keys=keys, nonces=first, clock=clock), other) == ACCEPTED
        replay = RequestVerifier(keys=keys, nonces=second, clock=clock)
        assert outcome(replay, request) == MEMORY_RESET
    finally:
        store.close()


# One process


def test_the_in_process_store_refuses_signatures_from_before_it_began(
    keys: InMemoryKeyResolver, clock: FixedClock
) -> None:
    request = signed(clock)
    before = RequestVerifier(keys=keys, nonces=InMemoryNonceStore(clock=clock), clock=clock)
    assert outcome(before, request) == ACCEPTED
    clock.advance(SECOND)
    restarted = RequestVerifier(keys=keys, nonces=InMemoryNonceStore(clock=clock), clock=clock)
    assert outcome(restarted, request) == MEMORY_RESET
    assert outcome(restarted, signed(clock)) == ACCEPTED
