"""SQL adapters of request signing: the key registry and usage bookkeeping.

Tables (migration 0002): `signing_keys`, `key_usage_daily`, `auth_events`, `nonces`. Upserts
use the dialect's `INSERT ... ON CONFLICT`, which SQLite and PostgreSQL both speak. Every
database failure becomes `StoreUnavailable`, so a verifier built on these refuses rather
than waves a request through.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

from sqlalchemy import CursorResult, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError as SAIntegrityError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from pkiforge.actor import Actor
from pkiforge.auth.algorithms import SignatureAlgorithm, load_public_key
from pkiforge.auth.keys import KeyStatus, RegisteredKey
from pkiforge.auth.registry import KeyQuery
from pkiforge.auth.usage import AuthEvent, DailyUsage, UsageBatch
from pkiforge.clock import utc
from pkiforge.errors import Conflict, IntegrityError, InvalidInput, StoreUnavailable
from pkiforge.store.db import SqlStore, SqlTransaction
from pkiforge.store.tables import AuthEventRow, KeyUsageRow, SigningKeyRow

__all__ = ["AuditHook", "SqlKeyRepository", "SqlUsageSink"]

# CAContext.audit has this shape: append an audit entry inside the same transaction
AuditHook = Callable[[SqlTransaction, Actor, str, str | None, dict[str, Any]], None]


@contextmanager
def _transaction(store: SqlStore, what: str) -> Iterator[SqlTransaction]:
    """One transaction; database failures become `StoreUnavailable`.

    Raises:
        StoreUnavailable: the database failed (integrity violations propagate as they are).
    """
    try:
        with store.transaction() as tx:
            yield tx
    except SAIntegrityError:
        raise
    except SQLAlchemyError as exc:
        raise StoreUnavailable(
            f"{what} unavailable: {type(exc).__name__}", internal=_first(exc)
        ) from None


@contextmanager
def _session(store: SqlStore, what: str) -> Iterator[Session]:
    """The ORM session of `_transaction`."""
    with _transaction(store, what) as tx:
        yield tx.session


def _insert(session: Session, table: type[Any]) -> Any:
    """`INSERT` with `on_conflict_do_*` for the session's dialect."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)


def _rowcount(result: Any) -> int:
    return cast(CursorResult[Any], result).rowcount


class SqlKeyRepository:
    """`KeyRepository` and `KeyResolver` over `signing_keys` (plus usage and event reads)."""

    def __init__(self, store: SqlStore, *, audit: AuditHook | None = None) -> None:
        self._store = store
        self._audit = audit

    def get(self, key_id: str) -> RegisteredKey | None:
        with _session(self._store, "key store") as s:
            row = s.get(SigningKeyRow, key_id)
            return _domain(row) if row else None

    def by_fingerprint(self, fingerprint: str) -> RegisteredKey | None:
        with _session(self._store, "key store") as s:
            row = s.scalar(
                select(SigningKeyRow).where(SigningKeyRow.fingerprint_sha256 == fingerprint)
            )
            return _domain(row) if row else None

    def add(self, key: RegisteredKey, actor: Actor) -> None:
        try:
            with self._store.transaction() as tx:
                tx.session.add(_row(key))
                tx.session.flush()
                self._record(tx, actor, "key.register", key)
        except SAIntegrityError:
            raise Conflict(
                "a key with this id or public key is already registered", field="public_key"
            ) from None
        except SQLAlchemyError as exc:
            raise StoreUnavailable(
                f"key store unavailable: {type(exc).__name__}", internal=_first(exc)
            ) from None

    def save_revocation(self, key: RegisteredKey, actor: Actor) -> None:
        with _transaction(self._store, "key store") as tx:
            result = tx.session.execute(
                update(SigningKeyRow)
                .where(SigningKeyRow.key_id == key.key_id, SigningKeyRow.status == "active")
                .values(
                    status=KeyStatus.REVOKED.value,
                    revoked_at=utc(key.revoked_at) if key.revoked_at else None,
                    revocation_reason=key.revocation_reason,
                )
            )
            if _rowcount(result) != 1:
                raise Conflict(f"key {key.key_id} is already revoked")
            self._record(tx, actor, "key.revoke", key)

    def _record(self, tx: SqlTransaction, actor: Actor, action: str, key: RegisteredKey) -> None:
        if self._audit is None:
            return
        details: dict[str, Any] = {
            "client_name": key.client_name,
            "fingerprint": key.fingerprint,
            "algorithm": str(key.algorithm),
        }
        if key.revocation_reason:
            details["reason"] = key.revocation_reason
        self._audit(tx, actor, action, key.key_id, details)

    def search(self, query: KeyQuery) -> list[RegisteredKey]:
        stmt = select(SigningKeyRow)
        if query.status is not None:
            stmt = stmt.where(SigningKeyRow.status == query.status.value)
        if query.client_name is not None:
            stmt = stmt.where(SigningKeyRow.client_name == query.client_name)
        stmt = stmt.order_by(SigningKeyRow.created_at.desc(), SigningKeyRow.key_id)
        with _session(self._store, "key store") as s:
            rows = s.scalars(stmt.limit(query.limit).offset(query.offset)).all()
            return [_domain(row) for row in rows]

    def count_by_status(self) -> dict[str, int]:
        """How many keys are in each status."""
        stmt = select(SigningKeyRow.status, func.count()).group_by(SigningKeyRow.status)
        with _session(self._store, "key store") as s:
            return {str(status): int(n) for status, n in s.execute(stmt)}

    def usage(self, key_id: str, since: dt.date) -> list[DailyUsage]:
        stmt = (
            select(KeyUsageRow)
            .where(KeyUsageRow.key_id == key_id, KeyUsageRow.day >= since)
            .order_by(KeyUsageRow.day)
        )
        with _session(self._store, "key store") as s:
            return [DailyUsage(r.key_id, r.day, r.successes, r.failures) for r in s.scalars(stmt)]

    def events(self, key_id: str | None, limit: int) -> list[AuthEvent]:
        stmt = select(AuthEventRow).order_by(AuthEventRow.id.desc()).limit(limit)
        if key_id is not None:
            stmt = stmt.where(AuthEventRow.key_id == key_id)
        with _session(self._store, "key store") as s:
            return [
                AuthEvent(utc(r.at), r.key_id, r.address, r.method, r.path, r.outcome, r.reason)
                for r in s.scalars(stmt)
            ]


def _row(key: RegisteredKey) -> SigningKeyRow:
    from cryptography.hazmat.primitives import serialization

    pem = key.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return SigningKeyRow(
        key_id=key.key_id,
        public_key_pem=pem.decode("ascii"),
        algorithm=str(key.algorithm),
        fingerprint_sha256=key.fingerprint,
        client_name=key.client_name,
        email=key.email,
        organization=key.organization,
        status=key.status.value,
        created_at=utc(key.created_at),
        revoked_at=utc(key.revoked_at) if key.revoked_at else None,
        revocation_reason=key.revocation_reason,
    )


def _domain(row: SigningKeyRow) -> RegisteredKey:
    try:
        return RegisteredKey(
            key_id=row.key_id,
            public_key=load_public_key(row.public_key_pem.encode("ascii")),
            algorithm=SignatureAlgorithm(row.algorithm),
            client_name=row.client_name,
            created_at=utc(row.created_at),
            email=row.email,
            organization=row.organization,
            status=KeyStatus(row.status),
            revoked_at=utc(row.revoked_at) if row.revoked_at else None,
            revocation_reason=row.revocation_reason,
            fingerprint=row.fingerprint_sha256,
        )
    except (InvalidInput, ValueError) as exc:
        raise IntegrityError(f"stored key {row.key_id} does not load: {exc}") from None


class SqlUsageSink:
    """`UsageSink`: events, per-day counts and `last_used`, in one transaction per batch."""

    def __init__(self, store: SqlStore) -> None:
        self._store = store

    def write(self, batch: UsageBatch) -> None:
        with _session(self._store, "usage store") as s:
            if batch.events:
                s.execute(insert(AuthEventRow), [_event_row(e) for e in batch.events])
            wanted = {key for key, _ in batch.counts} | set(batch.last_used)
            if not wanted:
                return
            known = set(
                s.scalars(select(SigningKeyRow.key_id).where(SigningKeyRow.key_id.in_(wanted)))
            )
            for (key, day), (ok, bad) in batch.counts.items():
                if key in known:
                    s.execute(_count_upsert(s, key, day, ok, bad))
            for key, at in batch.last_used.items():
                if key in known:
                    s.execute(_touch(key, utc(at)))


def _touch(key: str, at: dt.datetime) -> Any:
    """Move `last_used` forward (never back: batches of other workers may arrive late)."""
    row = SigningKeyRow
    newer = or_(row.last_used.is_(None), row.last_used < at)
    return update(row).where(row.key_id == key, newer).values(last_used=at)


def _count_upsert(session: Session, key: str, day: dt.date, ok: int, bad: int) -> Any:
    stmt = _insert(session, KeyUsageRow).values(key_id=key, day=day, successes=ok, failures=bad)
    return stmt.on_conflict_do_update(
        index_elements=["key_id", "day"],
        set_={
            "successes": KeyUsageRow.successes + stmt.excluded.successes,
            "failures": KeyUsageRow.failures + stmt.excluded.failures,
        },
    )


def _event_row(event: AuthEvent) -> dict[str, Any]:
    return {
        "at": utc(event.at),
        "key_id": event.key_id[:64] if event.key_id else None,
        "address": event.address[:64] if event.address else None,
        "method": event.method[:16],
        "path": event.path[:2048],
        "outcome": event.outcome[:16],
        "reason": event.reason[:255] if event.reason else None,
    }


def _first(exc: SQLAlchemyError) -> str:
    """The first line of a database error, for the log (StoreUnavailable.internal)."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
