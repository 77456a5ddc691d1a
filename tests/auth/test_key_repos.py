"""SQL adapters of request signing on SQLite and PostgreSQL: registry, nonces, bookkeeping."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from pkiforge.actor import Actor
from pkiforge.auth.keys import CachedKeyResolver, KeyStatus
from pkiforge.auth.registry import KeyQuery, KeyRegistration, KeyRegistry
from pkiforge.auth.usage import AuthEvent, UsageRecorder
from pkiforge.auth.verify import RequestVerifier
from pkiforge.clock import FixedClock
from pkiforge.errors import Conflict, InvalidInput, NotFound, StoreUnavailable, WeakKey
from pkiforge.store.db import SqlStore, SqlTransaction, make_engine
from pkiforge.store.key_repos import SqlKeyRepository, SqlUsageSink
from pkiforge.store.nonces import SqlNonceStore, stored_nonce_key

from .support import DATA, NOW, private_key, public_key, sign, signer_for

ADMIN = Actor("operator", "cli")


def pem(name: str) -> bytes:
    return public_key(name).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def private_pem_public(file: str) -> bytes:
    key = serialization.load_pem_private_key((DATA / file).read_bytes(), None)
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.fixture
def store(store_url: str) -> Iterator[SqlStore]:
    opened = SqlStore.open(store_url)
    yield opened
    opened.close()


@pytest.fixture
def audited() -> list[tuple[str, str | None]]:
    return []


@pytest.fixture
def registry(
    store: SqlStore, clock: FixedClock, audited: list[tuple[str, str | None]]
) -> KeyRegistry:
    def audit(
        tx: SqlTransaction, actor: Actor, action: str, subject: str | None, details: Any
    ) -> None:
        audited.append((action, subject))

    ids = iter(f"id-{i}" for i in range(100))
    return KeyRegistry(SqlKeyRepository(store, audit=audit), clock, new_id=lambda: next(ids))


def register(registry: KeyRegistry, name: str, client: str = "client-a") -> str:
    return registry.register(KeyRegistration(pem(name), client, "a@example.com"), ADMIN).key_id


# Registry


def test_register_get_list_revoke(
    registry: KeyRegistry, clock: FixedClock, audited: list[tuple[str, str | None]]
) -> None:
    first = register(registry, "client-ed25519")
    clock.advance(dt.timedelta(seconds=1))
    second = register(registry, "client-p256", client="client-b")
    key = registry.get(first)
    assert (key.client_name, key.email, key.algorithm, key.status) == (
        "client-a",
        "a@example.com",
        "ed25519",
        KeyStatus.ACTIVE,
    )
    assert [k.key_id for k in registry.search(KeyQuery())] == [second, first]  # newest first
    assert [k.key_id for k in registry.search(KeyQuery(client_name="client-b"))] == [second]
    assert [k.key_id for k in registry.search(KeyQuery(limit=1, offset=1))] == [first]
    revoked = registry.revoke(first, "laptop stolen", ADMIN)
    assert (revoked.status, revoked.revocation_reason) == (KeyStatus.REVOKED, "laptop stolen")
    assert registry.get(first).status is KeyStatus.REVOKED
    assert [k.key_id for k in registry.search(KeyQuery(status=KeyStatus.REVOKED))] == [first]
    with pytest.raises(Conflict):
        registry.revoke(first, None, ADMIN)
    with pytest.raises(NotFound):
        registry.revoke("nope", None, ADMIN)
    assert audited == [("key.register", first), ("key.register", second), ("key.revoke", first)]
    assert registry.repo.count_by_status() == {"active": 1, "revoked": 1}  # type: ignore[attr-defined]


def test_same_public_key_twice_is_a_conflict(registry: KeyRegistry) -> None:
    first = register(registry, "client-p384")
    with pytest.raises(Conflict, match=first):
        register(registry, "client-p384", client="someone-else")


def test_stored_keys_round_trip_every_algorithm(registry: KeyRegistry) -> None:
    for name, algorithm in [
        ("client-rsa2048", "rsa-pss-sha512"),
        ("client-p256", "ecdsa-p256-sha256"),
        ("client-p384", "ecdsa-p384-sha384"),
        ("client-ed25519", "ed25519"),
    ]:
        key = registry.get(register(registry, name))
        assert key.algorithm == algorithm
        assert key.public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ) == public_key(name).public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )


REFUSALS = [
    ("not-pem", dict(public_key_pem=b"hello"), InvalidInput, "public_key"),
    ("rsa-1024", dict(public_key_pem=private_pem_public("weak-rsa1024.pem")), WeakKey, None),
    ("ed448", dict(public_key_pem=private_pem_public("other-ed448.pem")), InvalidInput, None),
    ("p521", dict(public_key_pem=private_pem_public("other-p521.pem")), InvalidInput, None),
    ("no-name", dict(client_name="  "), InvalidInput, "client_name"),
    ("long-name", dict(client_name="x" * 256), InvalidInput, "client_name"),
    ("control-char", dict(organization="a\nb"), InvalidInput, "organization"),
    ("bad-email", dict(email="not-an-address"), InvalidInput, "email"),
    ("unknown-alg", dict(algorithm="hmac-sha256"), InvalidInput, "algorithm"),
    ("alg-mismatch", dict(algorithm="rsa-v1_5-sha256"), InvalidInput, "algorithm"),
]


@pytest.mark.parametrize(
    ("changes", "error", "field"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS]
)
def test_registration_refusals_name_the_field_and_write_nothing(
    registry: KeyRegistry, changes: dict[str, Any], error: type[Exception], field: str | None
) -> None:
    fields: dict[str, Any] = {"public_key_pem": pem("client-ed25519"), "client_name": "c"}
    with pytest.raises(error) as info:
        registry.register(KeyRegistration(**{**fields, **changes}), ADMIN)
    if field is not None:
        assert getattr(info.value, "field", None) == field
    assert registry.search(KeyQuery()) == []


def test_rsa_may_ask_for_pkcs1_v15(registry: KeyRegistry) -> None:
    registration = KeyRegistration(pem("client-rsa2048"), "c", algorithm="rsa-v1_5-sha256")
    assert registry.register(registration, ADMIN).algorithm == "rsa-v1_5-sha256"


# Nonces


def test_sql_nonces_refuse_replays_per_key_and_expire(store: SqlStore, clock: FixedClock) -> None:
    nonces = SqlNonceStore(store, clock=clock)
    assert nonces.check_and_store("k1", "n1", 10, created=NOW)
    assert not nonces.check_and_store("k1", "n1", 10, created=NOW)
    assert nonces.check_and_store("k2", "n1", 10, created=NOW)
    assert nonces.check_and_store("k", "1:n1", 10, created=NOW)
    clock.advance(dt.timedelta(seconds=10))
    assert nonces.check_and_store("k1", "n1", 10, created=NOW)  # expired row taken over
    assert not nonces.check_and_store("k1", "n1", 10, created=NOW)


def test_sql_nonces_purge_expired_rows(store: SqlStore, clock: FixedClock) -> None:
    nonces = SqlNonceStore(store, clock=clock, purge_every=0)
    nonces.open()
    for i in range(5):
        nonces.check_and_store("k", f"n{i}", 5, created=NOW)
    clock.advance(dt.timedelta(seconds=6))
    nonces.check_and_store("k", "fresh", 5, created=NOW)
    with store.transaction() as tx:
        kept = tx.session.execute(_sql("SELECT nonce_key FROM nonces")).scalars().all()
    assert sorted(kept) == ["1:k:fresh", "memory-start"]  # the memory start is never purged


def test_long_nonce_keys_are_hashed_to_fit() -> None:
    assert stored_nonce_key("k", "n") == "1:k:n"
    long = stored_nonce_key("k" * 200, "n" * 200)
    assert long.startswith("sha256:") and len(long) == 71
    assert long != stored_nonce_key("k" * 200, "n" * 199 + "m")


def test_a_database_that_cannot_answer_refuses(tmp_path: Any) -> None:
    closed = SqlStore(make_engine("postgresql://postgres@127.0.0.1:1/none?connect_timeout=2"))
    with pytest.raises(StoreUnavailable):
        SqlNonceStore(closed).check_and_store("k", "n", 10, created=NOW)
    with pytest.raises(StoreUnavailable):
        SqlKeyRepository(closed).get("k")
    with pytest.raises(StoreUnavailable):
        SqlUsageSink(closed).write(_batch([]))


def test_a_missing_table_is_unavailable_not_a_crash(store: SqlStore) -> None:
    with store.transaction() as tx:
        tx.session.execute(_sql("DROP TABLE nonces"))
    with pytest.raises(StoreUnavailable):
        SqlNonceStore(store).check_and_store("k", "n", 10, created=NOW)


def test_verifier_over_sql_refuses_replay_and_a_locally_revoked_key(
    registry: KeyRegistry, store: SqlStore, clock: FixedClock
) -> None:
    key_id = register(registry, "client-ed25519")
    cache = CachedKeyResolver(registry.repo, clock=clock)  # type: ignore[arg-type]
    registry.on_revoke = cache.invalidate
    verifier = RequestVerifier(keys=cache, nonces=SqlNonceStore(store, clock=clock), clock=clock)
    request = sign(signer_for("client-ed25519", key_id, clock=clock), "POST", body=b"{}")
    assert verifier.verify(request).key_id == key_id
    with pytest.raises(Exception, match="nonce reused"):
        verifier.verify(request)
    registry.revoke(key_id, "rotated", ADMIN)
    fresh = sign(signer_for("client-ed25519", key_id, clock=clock))
    with pytest.raises(Exception, match="key revoked"):
        verifier.verify(fresh)


# Usage and events


def _event(at: dt.datetime, key: str | None, outcome: str, known: bool = True) -> AuthEvent:
    return AuthEvent(at, key, "10.0.0.1", "GET", "/x", outcome, None, known_key=known)


def _batch(events: list[AuthEvent]) -> Any:
    from pkiforge.auth.usage import summarise

    return summarise(events)


def _sql(statement: str) -> Any:
    from sqlalchemy import text

    return text(statement)


def test_usage_counts_upsert_per_day_and_last_used_only_moves_forward(
    registry: KeyRegistry, store: SqlStore, clock: FixedClock
) -> None:
    key_id = register(registry, "client-ed25519")
    day2 = NOW + dt.timedelta(days=1)
    sink = SqlUsageSink(store)
    sink.write(
        _batch(
            [
                _event(NOW, key_id, "success"),
                _event(NOW, key_id, "failure"),
                _event(day2, key_id, "success"),
                _event(NOW, "ghost", "failure", known=False),
                _event(NOW, None, "failure", known=False),
            ]
        )
    )
    sink.write(_batch([_event(NOW, key_id, "success"), _event(NOW, "ghost", "success")]))
    clock.advance(dt.timedelta(days=1))
    usage = registry.usage(key_id, days=7)
    assert [(u.day, u.successes, u.failures) for u in usage] == [
        (NOW.date(), 2, 1),
        (day2.date(), 1, 0),
    ]
    with store.transaction() as tx:
        last = tx.session.execute(
            _sql("SELECT last_used FROM signing_keys WHERE key_id = :k"), {"k": key_id}
        ).scalar()
    assert last is not None and str(last).startswith(day2.strftime("%Y-%m-%d"))
    events = registry.events(None, 100)
    assert len(events) == 7
    assert [e.outcome for e in registry.events(key_id, 2)] == ["success", "success"]


def test_recorder_buffers_until_flush_and_survives_an_outage(
    registry: KeyRegistry, store: SqlStore
) -> None:
    key_id = register(registry, "client-p256")
    recorder = UsageRecorder(SqlUsageSink(store))
    recorder.record(_event(NOW, key_id, "success"))
    assert registry.events(key_id, 10) == []
    assert recorder.flush() == 1
    assert len(registry.events(key_id, 10)) == 1
    closed = SqlStore(make_engine("postgresql://postgres@127.0.0.1:1/none?connect_timeout=2"))
    broken = UsageRecorder(SqlUsageSink(closed))
    broken.record(_event(NOW, key_id, "success"))
    assert broken.flush() == 0  # logged and dropped, never raised


@pytest.mark.parametrize("days", [0, 367], ids=["zero", "too-many"])
def test_usage_window_is_bounded(registry: KeyRegistry, days: int) -> None:
    key_id = register(registry, "client-ed25519")
    with pytest.raises(InvalidInput, match="days"):
        registry.usage(key_id, days)


def test_private_key_helper_is_committed_data() -> None:
    assert private_key("client-ed25519") is not None
