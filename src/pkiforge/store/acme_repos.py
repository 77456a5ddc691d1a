"""The ACME repository (`acme.ports.AcmeRepository`) over the tables of migration 0014.

Every method is one transaction; state moves are conditional UPDATEs, so two replicas never
both start one challenge, both finalize one order, or both spend one nonce.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.exc import IntegrityError as SAIntegrityError
from sqlalchemy.exc import SQLAlchemyError

from pkiforge.acme.models import (
    Account,
    Authorization,
    Challenge,
    ExternalKey,
    Identifier,
    Order,
    Problem,
    Status,
)
from pkiforge.actor import Actor
from pkiforge.clock import utc
from pkiforge.errors import Conflict, StoreUnavailable
from pkiforge.store.db import SqlStore, SqlTransaction
from pkiforge.store.key_repos import AuditHook, _rowcount, _session, _transaction
from pkiforge.store.tables import (
    AcmeAccountRow,
    AcmeAuthorizationRow,
    AcmeChallengeRow,
    AcmeExternalKeyRow,
    AcmeNonceRow,
    AcmeOrderRow,
)

WHAT = "ACME store"
PURGE_EVERY = 256  # delete expired nonces on about one nonce write in this many


class SqlAcmeRepository:
    """`AcmeRepository` over one `SqlStore`."""

    def __init__(self, store: SqlStore, *, audit: AuditHook | None = None) -> None:
        self._store = store
        self._writes = 0
        self._audit = audit

    def _record(
        self, tx: SqlTransaction, actor: Actor, action: str, subject: str, details: dict[str, Any]
    ) -> None:
        if self._audit is not None:
            self._audit(tx, actor, action, subject, details)

    # nonces

    def add_nonce(self, nonce: str, expires_at: dt.datetime, now: dt.datetime) -> None:
        self._writes += 1
        with _session(self._store, WHAT) as s:
            if self._writes % PURGE_EVERY == 0:
                s.execute(delete(AcmeNonceRow).where(AcmeNonceRow.expires_at <= utc(now)))
            s.add(AcmeNonceRow(nonce=nonce, expires_at=utc(expires_at)))

    def take_nonce(self, nonce: str, now: dt.datetime) -> bool:
        with _session(self._store, WHAT) as s:
            result = s.execute(
                delete(AcmeNonceRow).where(
                    AcmeNonceRow.nonce == nonce, AcmeNonceRow.expires_at > utc(now)
                )
            )
            return _rowcount(result) == 1

    # external account binding keys

    def add_external_key(self, key: ExternalKey, actor: Actor) -> None:
        with _transaction(self._store, WHAT) as tx:
            self._record(tx, actor, "acme.eab.create", key.kid, {"service": key.service_id})
            tx.session.add(
                AcmeExternalKeyRow(
                    kid=key.kid,
                    service_id=key.service_id,
                    mac_key=key.mac_key,
                    created_at=utc(key.created_at),
                    account_id=key.account_id,
                )
            )

    def external_key(self, kid: str) -> ExternalKey | None:
        with _session(self._store, WHAT) as s:
            row = s.get(AcmeExternalKeyRow, kid)
            if row is None:
                return None
            return ExternalKey(
                row.kid, row.service_id, bytes(row.mac_key), utc(row.created_at), row.account_id
            )

    # accounts

    def add_account(self, account: Account) -> None:
        try:
            with self._store.transaction() as tx:
                s = tx.session
                if account.eab_kid is not None:
                    bound = s.execute(
                        update(AcmeExternalKeyRow)
                        .where(
                            AcmeExternalKeyRow.kid == account.eab_kid,
                            AcmeExternalKeyRow.account_id.is_(None),
                        )
                        .values(account_id=account.account_id)
                    )
                    if _rowcount(bound) != 1:
                        raise Conflict("the external account binding key is already used")
                self._record(
                    tx,
                    account_actor(account.account_id),
                    "acme.account.create",
                    account.account_id,
                    {
                        "service": account.service_id,
                        "eab_kid": account.eab_kid,
                        "thumbprint": account.thumbprint,
                    },
                )
                s.add(
                    AcmeAccountRow(
                        account_id=account.account_id,
                        thumbprint=account.thumbprint,
                        jwk=account.jwk,
                        service_id=account.service_id,
                        status=account.status.value,
                        contact=list(account.contact),
                        created_at=utc(account.created_at),
                        eab_kid=account.eab_kid,
                    )
                )
                s.flush()
        except SAIntegrityError:
            raise Conflict("an account has this key") from None
        except SQLAlchemyError as exc:
            raise StoreUnavailable(f"{WHAT} unavailable: {type(exc).__name__}") from None

    def account(self, account_id: str) -> Account | None:
        with _session(self._store, WHAT) as s:
            row = s.get(AcmeAccountRow, account_id)
            return _account(row) if row is not None else None

    def account_by_thumbprint(self, thumbprint: str) -> Account | None:
        with _session(self._store, WHAT) as s:
            row = s.scalar(select(AcmeAccountRow).where(AcmeAccountRow.thumbprint == thumbprint))
            return _account(row) if row is not None else None

    def deactivate_account(self, account_id: str) -> None:
        with _transaction(self._store, WHAT) as tx:
            actor = account_actor(account_id)
            self._record(tx, actor, "acme.account.deactivate", account_id, {})
            tx.session.execute(
                update(AcmeAccountRow)
                .where(AcmeAccountRow.account_id == account_id)
                .values(status=Status.DEACTIVATED.value)
            )

    def change_key(self, account_id: str, thumbprint: str, jwk: dict[str, Any]) -> None:
        try:
            with self._store.transaction() as tx:
                tx.session.execute(
                    update(AcmeAccountRow)
                    .where(AcmeAccountRow.account_id == account_id)
                    .values(thumbprint=thumbprint, jwk=jwk)
                )
                details = {"thumbprint": thumbprint}
                actor = account_actor(account_id)
                self._record(tx, actor, "acme.account.key_change", account_id, details)
        except SAIntegrityError:
            raise Conflict("another account has this key") from None
        except SQLAlchemyError as exc:
            raise StoreUnavailable(f"{WHAT} unavailable: {type(exc).__name__}") from None

    def orders_of(self, account_id: str, limit: int) -> list[Order]:
        with _session(self._store, WHAT) as s:
            rows = s.scalars(
                select(AcmeOrderRow)
                .where(AcmeOrderRow.account_id == account_id)
                .order_by(AcmeOrderRow.created_at.desc())
                .limit(limit)
            ).all()
            return [_order(r) for r in rows]

    # orders, authorizations, challenges

    def add_order(self, order: Order, authorizations: Sequence[Authorization]) -> None:
        with _session(self._store, WHAT) as s:
            s.add(
                AcmeOrderRow(
                    order_id=order.order_id,
                    account_id=order.account_id,
                    status=order.status.value,
                    identifiers=[i.json() for i in order.identifiers],
                    authz_ids=list(order.authz_ids),
                    expires_at=utc(order.expires_at),
                    issuer=order.issuer,
                    created_at=utc(order.created_at),
                )
            )
            for authz in authorizations:
                s.add(
                    AcmeAuthorizationRow(
                        authz_id=authz.authz_id,
                        order_id=authz.order_id,
                        identifier_type=authz.identifier.type,
                        identifier_value=authz.identifier.value,
                        status=authz.status.value,
                        expires_at=utc(authz.expires_at),
                    )
                )
                for ch in authz.challenges:
                    s.add(
                        AcmeChallengeRow(
                            challenge_id=ch.challenge_id,
                            authz_id=ch.authz_id,
                            type=ch.type,
                            token=ch.token,
                            status=ch.status.value,
                        )
                    )

    def order(self, order_id: str) -> Order | None:
        with _session(self._store, WHAT) as s:
            row = s.get(AcmeOrderRow, order_id)
            return _order(row) if row is not None else None

    def order_by_serial(self, serial: int) -> Order | None:
        with _session(self._store, WHAT) as s:
            row = s.scalar(
                select(AcmeOrderRow).where(AcmeOrderRow.certificate_serial == _hex(serial))
            )
            return _order(row) if row is not None else None

    def authorization(self, authz_id: str) -> Authorization | None:
        with _session(self._store, WHAT) as s:
            row = s.get(AcmeAuthorizationRow, authz_id)
            if row is None:
                return None
            challenges = s.scalars(
                select(AcmeChallengeRow).where(AcmeChallengeRow.authz_id == authz_id)
            ).all()
            return _authz(row, challenges)

    def authorizations(self, order_id: str) -> list[Authorization]:
        with _session(self._store, WHAT) as s:
            rows = s.scalars(
                select(AcmeAuthorizationRow).where(AcmeAuthorizationRow.order_id == order_id)
            ).all()
            return [_authz(r, ()) for r in rows]

    def challenge(self, challenge_id: str) -> Challenge | None:
        with _session(self._store, WHAT) as s:
            row = s.get(AcmeChallengeRow, challenge_id)
            return _challenge(row) if row is not None else None

    def start_challenge(
        self, challenge_id: str, now: dt.datetime, stale_before: dt.datetime
    ) -> bool:
        pending = AcmeChallengeRow.status == Status.PENDING.value
        lost = and_(
            AcmeChallengeRow.status == Status.PROCESSING.value,
            AcmeChallengeRow.started_at < utc(stale_before),
        )
        with _session(self._store, WHAT) as s:
            result = s.execute(
                update(AcmeChallengeRow)
                .where(AcmeChallengeRow.challenge_id == challenge_id, or_(pending, lost))
                .values(status=Status.PROCESSING.value, started_at=utc(now))
            )
            return _rowcount(result) == 1

    def finish_challenge(
        self,
        challenge: Challenge,
        status: Status,
        validated_at: dt.datetime | None,
        error: Problem | None,
    ) -> None:
        with _session(self._store, WHAT) as s:
            s.execute(
                update(AcmeChallengeRow)
                .where(AcmeChallengeRow.challenge_id == challenge.challenge_id)
                .values(
                    status=status.value,
                    validated_at=utc(validated_at) if validated_at else None,
                    error=error.json() if error else None,
                )
            )
            s.execute(
                update(AcmeAuthorizationRow)
                .where(
                    AcmeAuthorizationRow.authz_id == challenge.authz_id,
                    AcmeAuthorizationRow.status == Status.PENDING.value,
                )
                .values(status=status.value)
            )

    def move_order(
        self,
        order_id: str,
        expected: Status,
        status: Status,
        *,
        serial: int | None = None,
        error: Problem | None = None,
    ) -> bool:
        values: dict[str, Any] = {"status": status.value}
        if serial is not None:
            values["certificate_serial"] = _hex(serial)
        if error is not None:
            values["error"] = error.json()
        with _session(self._store, WHAT) as s:
            result = s.execute(
                update(AcmeOrderRow)
                .where(AcmeOrderRow.order_id == order_id, AcmeOrderRow.status == expected.value)
                .values(**values)
            )
            return _rowcount(result) == 1


def account_actor(account_id: str) -> Actor:
    """Who acts in the audit trail when an ACME account does."""
    return Actor("acme-account", account_id)


def _hex(serial: int) -> str:
    return format(serial, "x")


def _account(row: AcmeAccountRow) -> Account:
    return Account(
        row.account_id,
        row.thumbprint,
        dict(row.jwk),
        row.service_id,
        Status(row.status),
        tuple(row.contact),
        utc(row.created_at),
        row.eab_kid,
    )


def _problem(value: dict[str, Any] | None) -> Problem | None:
    if not value:
        return None
    kind = str(value.get("type", "")).removeprefix("urn:ietf:params:acme:error:")
    return Problem(kind, str(value.get("detail", "")), int(value.get("status", 400)))


def _order(row: AcmeOrderRow) -> Order:
    return Order(
        row.order_id,
        row.account_id,
        Status(row.status),
        tuple(Identifier(i["type"], i["value"]) for i in row.identifiers),
        tuple(row.authz_ids),
        utc(row.expires_at),
        row.issuer,
        utc(row.created_at),
        int(row.certificate_serial, 16) if row.certificate_serial else None,
        _problem(row.error),
    )


def _challenge(row: AcmeChallengeRow) -> Challenge:
    return Challenge(
        row.challenge_id,
        row.authz_id,
        row.type,
        row.token,
        Status(row.status),
        utc(row.validated_at) if row.validated_at else None,
        _problem(row.error),
        utc(row.started_at) if row.started_at else None,
    )


def _authz(row: AcmeAuthorizationRow, challenges: Sequence[AcmeChallengeRow]) -> Authorization:
    return Authorization(
        row.authz_id,
        row.order_id,
        Identifier(row.identifier_type, row.identifier_value),
        Status(row.status),
        utc(row.expires_at),
        tuple(_challenge(c) for c in challenges),
    )
