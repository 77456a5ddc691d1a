"""SQLAlchemy repositories of the service registry and enrollment tokens (rows <-> domain)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import (
    BindParameter,
    CursorResult,
    Table,
    Text,
    bindparam,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from pkiforge.ca.name_index import pattern_key
from pkiforge.ca.registry_models import EnrollmentToken, ServiceRecord, ServiceWebhook
from pkiforge.clock import utc
from pkiforge.errors import Conflict
from pkiforge.store.prepared import Prepared
from pkiforge.store.tables import (
    EnrollmentTokenRow,
    ServiceNameRow,
    ServiceRow,
    ServiceWebhookRow,
)
from pkiforge.store.unit import Repo


def _ts(value: dt.datetime | None) -> dt.datetime | None:
    return utc(value) if value is not None else None


_SERVICES = cast(Table, ServiceRow.__table__)
_SERVICE_GET = Prepared(select(_SERVICES).where(_SERVICES.c.service_id == bindparam("b_id")))
_NAMES = cast(Table, ServiceNameRow.__table__)
_NAMES_DROP = Prepared(delete(_NAMES).where(_NAMES.c.service_id == bindparam("b_id")))
_NAMES_ADD = Prepared(insert(_NAMES))
_OWNERS_MAX_KEYS = 16  # one prepared statement per number of keys up to this; more in batches


def _owners_lookup(n: int) -> Prepared:
    keys: list[BindParameter[str]] = [bindparam(f"k{i}", type_=Text()) for i in range(n)]
    return Prepared(select(_NAMES.c.pattern, _NAMES.c.service_id).where(_NAMES.c.key.in_(keys)))


_OWNERS = {n: _owners_lookup(n) for n in range(1, _OWNERS_MAX_KEYS + 1)}


class SqlServiceRepository(Repo):
    def add(self, service: ServiceRecord) -> None:
        row = ServiceRow(service_id=service.service_id)
        self._fill(row, service)
        try:
            with self.s.begin_nested():  # a failed INSERT must not poison the transaction
                self.s.add(row)
        except SAIntegrityError:
            raise Conflict(
                f"service {service.service_id!r} is already registered", field="service_id"
            ) from None
        self._index_names(service)

    def update(self, service: ServiceRecord) -> None:
        row = self.s.get(ServiceRow, service.service_id)
        if row is None:
            raise Conflict(f"service {service.service_id!r} is not registered", field="service_id")
        names_changed = tuple(row.names or ()) != service.names
        self._fill(row, service)
        self.s.flush()
        if names_changed:
            self._index_names(service)

    def _index_names(self, service: ServiceRecord) -> None:
        # `service_names` mirrors `services.names` (ca/name_index.py), in the same transaction
        self.unit.run(_NAMES_DROP, {"b_id": service.service_id})
        keys: dict[str, str] = {}
        for pattern in service.names:
            keys.setdefault(pattern_key(pattern), pattern)
        for key, pattern in keys.items():
            self.unit.run(
                _NAMES_ADD, {"key": key, "service_id": service.service_id, "pattern": pattern}
            )

    @staticmethod
    def _fill(row: ServiceRow, r: ServiceRecord) -> None:
        row.service_name, row.service_type = r.service_name, r.service_type
        row.endpoints, row.names = list(r.endpoints), list(r.names)
        row.health_check_url, row.owner = r.health_check_url, dict(r.owner)
        row.auto_renew, row.status = r.auto_renew, r.status
        row.created_at, row.updated_at = utc(r.created_at), utc(r.updated_at)
        row.last_seen = _ts(r.last_seen)

    def get(self, service_id: str) -> ServiceRecord | None:
        # prepared, not the ORM: every certificate request reads its service
        row = self.unit.run(_SERVICE_GET, {"b_id": service_id}).first()
        return self._domain(row) if row else None

    def list(self, service_type: str | None = None) -> list[ServiceRecord]:
        stmt = select(ServiceRow).order_by(ServiceRow.service_id)
        if service_type is not None:
            stmt = stmt.where(ServiceRow.service_type == service_type)
        return [self._domain(r) for r in self.s.scalars(stmt)]

    def owners_of(self, keys: Sequence[str], *, claiming: bool = False) -> dict[str, str]:
        if claiming:
            # under READ COMMITTED two registrations could both read a name as free
            self.serialise("pkiforge.service_names")
        found: list[tuple[str, str]] = []
        wanted = list(dict.fromkeys(keys))
        for start in range(0, len(wanted), _OWNERS_MAX_KEYS):
            batch = wanted[start : start + _OWNERS_MAX_KEYS]
            ran = self.unit.run(_OWNERS[len(batch)], {f"k{i}": k for i, k in enumerate(batch)})
            found.extend((str(pattern), str(service_id)) for pattern, service_id in ran.rows)
        # exact names before wildcards: the most specific registration decides (sorted here,
        # not in SQL, where collations may ignore the `*` and the dots)
        found.sort(key=lambda row: ("*." in row[0], row[1], row[0]))
        out: dict[str, str] = {}
        for pattern, service_id in found:
            out.setdefault(pattern, service_id)
        return out

    def touch(self, service_id: str, at: dt.datetime) -> bool:
        result = self.s.execute(
            update(ServiceRow).where(ServiceRow.service_id == service_id).values(last_seen=utc(at))
        )
        return cast(CursorResult[Any], result).rowcount == 1

    @staticmethod
    def _domain(row: Any) -> ServiceRecord:
        return ServiceRecord(
            service_id=row.service_id,
            service_name=row.service_name,
            created_at=utc(row.created_at),
            updated_at=utc(row.updated_at),
            service_type=row.service_type,
            endpoints=tuple(row.endpoints or ()),
            names=tuple(row.names or ()),
            health_check_url=row.health_check_url,
            owner=dict(row.owner or {}),
            auto_renew=bool(row.auto_renew),
            status=row.status,
            last_seen=_ts(row.last_seen),
        )


class SqlTokenRepository(Repo):
    def add(self, token: EnrollmentToken) -> None:
        self.s.add(
            EnrollmentTokenRow(
                token_id=token.token_id,
                secret_hash=token.secret_hash,
                service_id=token.service_id,
                profile=token.profile,
                created_at=utc(token.created_at),
                expires_at=utc(token.expires_at),
                created_by=token.created_by,
            )
        )
        self.s.flush()

    def get(self, token_id: str) -> EnrollmentToken | None:
        row = self.s.get(EnrollmentTokenRow, token_id)
        return self._domain(row) if row else None

    def list(self, service_id: str | None = None) -> list[EnrollmentToken]:
        stmt = select(EnrollmentTokenRow).order_by(EnrollmentTokenRow.created_at.desc())
        if service_id is not None:
            stmt = stmt.where(EnrollmentTokenRow.service_id == service_id)
        return [self._domain(r) for r in self.s.scalars(stmt)]

    def consume(self, token_id: str, secret_hash: str, at: dt.datetime, by: str) -> bool:
        # one conditional UPDATE: whichever replica's statement lands first gets rowcount 1
        t = EnrollmentTokenRow
        result = self.s.execute(
            update(t)
            .where(
                t.token_id == token_id,
                t.secret_hash == secret_hash,
                t.used_at.is_(None),
                t.expires_at > utc(at),
            )
            .values(used_at=utc(at), used_by=by[:64])
        )
        return cast(CursorResult[Any], result).rowcount == 1

    def release(self, token_id: str) -> None:
        # only the winner of `consume` calls this, before any certificate was recorded
        t = EnrollmentTokenRow
        self.s.execute(
            update(t)
            .where(t.token_id == token_id, t.certificate_serial.is_(None))
            .values(used_at=None, used_by=None)
        )

    def set_certificate(self, token_id: str, serial: str) -> None:
        t = EnrollmentTokenRow
        self.s.execute(update(t).where(t.token_id == token_id).values(certificate_serial=serial))

    @staticmethod
    def _domain(row: EnrollmentTokenRow) -> EnrollmentToken:
        return EnrollmentToken(
            token_id=row.token_id,
            secret_hash=row.secret_hash,
            service_id=row.service_id,
            profile=row.profile,
            created_at=utc(row.created_at),
            expires_at=utc(row.expires_at),
            created_by=row.created_by,
            used_at=_ts(row.used_at),
            used_by=row.used_by,
            certificate_serial=row.certificate_serial,
        )


_HOOKS = cast(Table, ServiceWebhookRow.__table__)


class SqlServiceWebhookRepository(Repo):
    def get(self, service_id: str) -> ServiceWebhook | None:
        row = self.c.execute(select(_HOOKS).where(_HOOKS.c.service_id == service_id)).first()
        if row is None:
            return None
        return ServiceWebhook(
            row.service_id, row.url, row.secret, utc(row.created_at), utc(row.updated_at)
        )

    def put(self, hook: ServiceWebhook) -> None:
        values = {
            "url": hook.url,
            "secret": hook.secret,
            "created_at": utc(hook.created_at),
            "updated_at": utc(hook.updated_at),
        }
        self.serialise("pkiforge.service_webhooks")  # two first puts must not both insert
        changed = self.c.execute(
            update(_HOOKS).where(_HOOKS.c.service_id == hook.service_id).values(values)
        ).rowcount
        if changed == 0:
            self.c.execute(insert(_HOOKS).values(service_id=hook.service_id, **values))

    def delete(self, service_id: str) -> bool:
        gone = self.c.execute(delete(_HOOKS).where(_HOOKS.c.service_id == service_id)).rowcount
        return bool(gone)
