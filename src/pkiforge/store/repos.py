"""SQLAlchemy repositories: convert rows to domain values and back; no business rules."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any, cast

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import (
    ColumnElement,
    CursorResult,
    Select,
    Table,
    and_,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from pkiforge.ca.models import (
    RESPONDER_PROFILE,
    AuditEntry,
    AuditHead,
    CAKind,
    CARecord,
    CAStatus,
    CertificateQuery,
    CertificateRecord,
    CertStatus,
    CRLRecord,
    CRLState,
    Order,
    Revocation,
    Total,
    format_serial,
)
from pkiforge.ca.paging import order_of
from pkiforge.clock import utc
from pkiforge.errors import Conflict
from pkiforge.store import inventory
from pkiforge.store.prepared import Prepared
from pkiforge.store.tables import (
    AuditRow,
    CARow,
    CertificateRow,
    CRLRow,
    DeltaCRLRow,
    OCSPAnswerRow,
    RevocationRow,
)
from pkiforge.store.unit import Repo


def _pem(cert: x509.Certificate | None) -> str | None:
    return cert.public_bytes(Encoding.PEM).decode("ascii") if cert else None


def _cert(pem: str | None) -> x509.Certificate | None:
    return x509.load_pem_x509_certificate(pem.encode("ascii")) if pem else None


def _ts(value: dt.datetime | None) -> dt.datetime | None:
    # also on write: SQLite keeps the wall time and drops the offset, so store and compare UTC
    return utc(value) if value is not None else None


class SqlCARepository(Repo):
    def add(self, ca: CARecord) -> None:
        try:
            with self.s.begin_nested():  # a failed INSERT must not poison the transaction
                self.s.add(
                    CARow(
                        name=ca.name,
                        kind=ca.kind.value,
                        status=ca.status.value,
                        parent=ca.parent,
                        cert_pem=_pem(ca.certificate),
                        key_ref=ca.key_ref,
                        created_at=utc(ca.created_at),
                        crl_number=ca.crl_number,
                    )
                )
        except SAIntegrityError:
            raise Conflict(f"CA {ca.name!r} already exists", field="name") from None

    def update(self, ca: CARecord) -> None:
        row = self.s.get(CARow, ca.name)
        if row is None:
            self.add(ca)
            return
        row.kind, row.status, row.parent = ca.kind.value, ca.status.value, ca.parent
        row.cert_pem, row.key_ref, row.crl_number = _pem(ca.certificate), ca.key_ref, ca.crl_number
        self.s.flush()

    def get(self, name: str, *, for_update: bool = False) -> CARecord | None:
        stmt = select(CARow).where(CARow.name == name)
        if for_update:
            # FOR NO KEY UPDATE: waits for the row's other writers (CRLs, revocations), not
            # for the foreign-key checks of certificates this CA is issuing meanwhile
            stmt = stmt.with_for_update(key_share=True)
        row = self.s.scalars(stmt).first()
        return self._domain(row) if row else None

    def list(self) -> list[CARecord]:
        rows = self.s.scalars(select(CARow).order_by(CARow.kind.desc(), CARow.created_at))
        return [self._domain(r) for r in rows]

    def states(self) -> tuple[tuple[str, CAStatus], ...]:
        # sorted here, not by the database: its collation may order hyphens otherwise
        rows = self.c.execute(select(CARow.name, CARow.status))
        return tuple(sorted((name, CAStatus(status)) for name, status in rows))

    @staticmethod
    def _domain(row: CARow) -> CARecord:
        return CARecord(
            row.name,
            CAKind(row.kind),
            CAStatus(row.status),
            row.parent,
            _cert(row.cert_pem),
            row.key_ref,
            utc(row.created_at),
            row.crl_number,
        )


_CERTS = cast(Table, CertificateRow.__table__)
_OCSP_ANSWERS = cast(Table, OCSPAnswerRow.__table__)
_REVS = cast(Table, RevocationRow.__table__)
# certificate columns, then the revocation's (NULL when not revoked) under their own labels
_CERT_COLUMNS = (
    *_CERTS.c,
    _REVS.c.reason.label("rev_reason"),
    _REVS.c.revoked_at.label("rev_at"),
    _REVS.c.invalidity_date.label("rev_invalidity"),
    _REVS.c.revoked_by.label("rev_by"),
)
_CERT_SELECT = select(*_CERT_COLUMNS).select_from(
    _CERTS.outerjoin(_REVS, _REVS.c.serial_number == _CERTS.c.serial_number)
)
_CERT_GET = _CERT_SELECT.where(_CERTS.c.serial_number == bindparam("b_serial"))
# the revoked certificates, found by serial from the revocations (few): filtering the outer
# join above to revoked rows would make SQLite read every certificate for each CRL
# (archived ones have been expired for the tidy job's retention: no CRL lists them any more)
_REVOKED_SELECT = _CERT_SELECT.where(
    _CERTS.c.serial_number.in_(select(_REVS.c.serial_number)), _CERTS.c.archived_at.is_(None)
)
_CERT_STANDING = Prepared(
    select(_CERTS.c.status, _CERTS.c.fingerprint_sha256).where(
        _CERTS.c.serial_number == bindparam("b_serial")
    )
)
_CERT_UPDATE = update(_CERTS).where(_CERTS.c.serial_number == bindparam("b_serial"))
_CERT_ACTIVATE = Prepared(_CERT_UPDATE.where(_CERTS.c.status == CertStatus.PENDING.value))
_CERT_INSERT: dict[str, Prepared] = {}


def _insert_ignoring_conflict(dialect: str) -> Prepared:
    """`INSERT ... ON CONFLICT DO NOTHING` on `certificates`: a taken serial inserts no row."""
    stmt = _CERT_INSERT.get(dialect)
    if stmt is None:
        from sqlalchemy.dialects import postgresql, sqlite

        make = postgresql.insert if dialect == "postgresql" else sqlite.insert
        stmt = _CERT_INSERT[dialect] = Prepared(
            make(_CERTS)
            .on_conflict_do_nothing(index_elements=[_CERTS.c.serial_number])
            .returning(_CERTS.c.serial_number)  # psycopg reports no rowcount for this one
        )
    return stmt


class SqlCertificateRepository(Repo):
    # Core statements built once, not ORM objects: these run inside the serialised write
    # section of every issuance, where the unit of work's bookkeeping was most of the cost

    def add(self, record: CertificateRecord) -> None:
        values = {"serial_number": format_serial(record.serial), **self._values(record)}
        inserted = self.unit.run(_insert_ignoring_conflict(self.unit.dialect), values).first()
        if inserted is None:  # a concurrent writer took the serial
            raise Conflict(f"serial {record.serial_hex} already exists", field="serial")

    def update(self, record: CertificateRecord) -> None:
        values = {"b_serial": format_serial(record.serial), **self._values(record)}
        if _rowcount(self.c.execute(_CERT_UPDATE, values)) == 0:
            raise Conflict(f"serial {record.serial_hex} is not stored", field="serial")

    def activate(self, record: CertificateRecord) -> bool:
        # only what signing added: an UPDATE naming every column also rewrites every index
        values = {
            "b_serial": format_serial(record.serial),
            "status": record.status.value,
            "not_before": _ts(record.not_before),
            "not_after": _ts(record.not_after),
            "fingerprint_sha256": record.fingerprint,
            "pem": _pem(record.certificate),
        }
        return self.unit.run(_CERT_ACTIVATE, values).rowcount == 1

    @staticmethod
    def _values(r: CertificateRecord) -> dict[str, Any]:
        return {
            "issuer": r.issuer,
            "profile": r.profile,
            "common_name": r.common_name,
            "names": list(r.names),
            "service_id": r.service_id,
            "status": r.status.value,
            "created_at": utc(r.created_at),
            "not_before": _ts(r.not_before),
            "not_after": _ts(r.not_after),
            "fingerprint_sha256": r.fingerprint,
            "pem": _pem(r.certificate),
            "server_generated_key": r.server_generated_key,
            "renewed_from": format_serial(r.renewed_from) if r.renewed_from is not None else None,
            "metadata": dict(r.metadata) or None,  # SQL NULL when empty, like rows before 0003
        }

    def get(self, serial: int) -> CertificateRecord | None:
        found = self.c.execute(_CERT_GET, {"b_serial": format_serial(serial)}).first()
        return self._domain(found) if found else None

    def standing(self, serial: int) -> tuple[CertStatus, str | None] | None:
        found = self.unit.run(_CERT_STANDING, {"b_serial": format_serial(serial)}).first()
        return (CertStatus(found.status), found.fingerprint_sha256) if found else None

    def search(self, query: CertificateQuery) -> list[CertificateRecord]:
        return [self._domain(row) for row in self.c.execute(self.statement(query))]

    @classmethod
    def statement(cls, query: CertificateQuery) -> Select[Any]:
        """The SELECT of `search`: keyset pagination (ca/paging.py), never an OFFSET."""
        order = order_of(query)
        stmt = _CERT_SELECT.where(*cls._filters(query, order))
        if query.after is not None:
            stmt = stmt.where(inventory.after(query.after))
        return stmt.order_by(*inventory.order_by(order)).limit(query.limit)

    def count(self, query: CertificateQuery) -> int:
        stmt = select(func.count()).select_from(_CERTS).where(*self._filters(query))
        return int(self.c.execute(stmt).scalar() or 0)

    def total(self, query: CertificateQuery) -> Total:
        order = order_of(query)
        # the planner estimates the plain terms better than the ones written for its indexes
        plain = self._filters(query, plain=True)
        return inventory.total(self.c, self._filters(query, order), plain, order)

    @staticmethod
    def _filters(
        q: CertificateQuery, order: Order | None = None, *, plain: bool = False
    ) -> list[ColumnElement[bool]]:
        """The WHERE terms of `q`; for a listing in `order`, those that no index may serve
        are written so that none does (store/inventory.py, `unindexed`); `plain`: without
        the status index's repeated condition either (for the planner's estimate)."""
        c = _CERTS.c
        out: list[ColumnElement[bool]] = []
        by_expiry = order in (Order.EXPIRING, Order.EXPIRED)
        if q.issuer:
            out.append((inventory.unindexed(c.issuer) if by_expiry else c.issuer) == q.issuer)
        if q.service_id:
            out.append(c.service_id == q.service_id)
        if q.serial_prefix:
            out.append(c.serial_number.startswith(q.serial_prefix, autoescape=True))
        if q.exclude_internal:
            out.append(c.profile != RESPONDER_PROFILE)
        now = utc(q.now or dt.datetime.now(dt.UTC))
        # an archived certificate expired long ago: a query for unexpired ones (the quota
        # count, discovery) cannot find one and need not read the rows to check
        if not q.include_archived and q.status is not CertStatus.ACTIVE and not q.expiring_before:
            out.append(c.archived_at.is_(None))
        if q.status is CertStatus.EXPIRED:
            out.append(and_(c.status == CertStatus.ACTIVE.value, c.not_after <= now))
        elif q.status is CertStatus.ACTIVE:
            expiry = inventory.unindexed(c.not_after) if order is Order.NEWEST else c.not_after
            out.append(and_(c.status == CertStatus.ACTIVE.value, expiry > now))
        elif q.status is not None:
            # the second term, implied by the first, is the status index's own condition:
            # SQLite takes a partial index only for a query that repeats it (tables.py)
            out.append(c.status == q.status.value)
            if not plain:
                out.append(c.status != CertStatus.ACTIVE.value)
        if q.expiring_before:
            out.append(
                and_(
                    c.status == CertStatus.ACTIVE.value,
                    c.not_after > now,
                    c.not_after <= utc(q.expiring_before),
                )
            )
        return out

    def revoke(self, serial: int, revocation: Revocation) -> None:
        key = format_serial(serial)
        changed = self.c.execute(
            update(_CERTS)
            .where(_CERTS.c.serial_number == key, _CERTS.c.status != CertStatus.REVOKED.value)
            .values(status=CertStatus.REVOKED.value)
            .returning(_CERTS.c.issuer)
        ).first()
        if changed is None:
            if self.c.execute(select(_CERTS.c.status).where(_CERTS.c.serial_number == key)).first():
                raise Conflict(f"serial {key} is already revoked", field="serial")
            raise Conflict(f"serial {key} is not stored", field="serial")
        revoked_at = utc(revocation.revoked_at)
        # no cached `good` answer outlives this commit (store/ocsp_repos.py `keep`)
        self.c.execute(delete(_OCSP_ANSWERS).where(_OCSP_ANSWERS.c.serial_number == key))
        self.c.execute(
            insert(_REVS).values(
                serial_number=key,
                reason=revocation.reason.value,
                revoked_at=revoked_at,
                invalidity_date=_ts(revocation.invalidity_date),
                revoked_by=revocation.revoked_by,
            )
        )
        # the issuer's CRL no longer lists every revocation; a CRL built while this
        # transaction runs waits for the row (PostgreSQL) or the writer lock (SQLite)
        self.c.execute(
            update(_CAS)
            .where(_CAS.c.name == changed.issuer)
            .values(
                crl_stale_since=func.coalesce(_CAS.c.crl_stale_since, revoked_at),
                last_revoked_at=revoked_at,
            )
        )

    def revoked(self, issuer: str) -> list[CertificateRecord]:
        stmt = _REVOKED_SELECT.where(_CERTS.c.issuer == issuer).order_by(
            _REVS.c.revoked_at, _CERTS.c.serial_number
        )
        return [self._domain(row) for row in self.c.execute(stmt)]

    def crl_entries(
        self,
        issuer: str,
        *,
        unexpired_at: dt.datetime,
        leave_out: int,
        since: dt.datetime | None = None,
    ) -> Iterator[tuple[int, Revocation]]:
        # the revocation columns only, streamed in batches: no certificate is read or parsed
        stmt = (
            select(
                _REVS.c.serial_number,
                _REVS.c.reason,
                _REVS.c.revoked_at,
                _REVS.c.invalidity_date,
                _REVS.c.revoked_by,
            )
            .select_from(_REVS.join(_CERTS, _CERTS.c.serial_number == _REVS.c.serial_number))
            .where(
                _CERTS.c.issuer == issuer,
                _CERTS.c.serial_number != format_serial(leave_out),
                _CERTS.c.not_after.is_(None) | (_CERTS.c.not_after > _ts(unexpired_at)),
                _CERTS.c.archived_at.is_(None),  # as _REVOKED_SELECT: long expired
            )
            .order_by(_REVS.c.revoked_at, _REVS.c.serial_number)
            .execution_options(yield_per=5000)
        )
        if since is not None:
            stmt = stmt.where(_REVS.c.revoked_at >= _ts(since))
        for serial, reason, at, invalidity, by in self.c.execute(stmt):
            yield (
                int(serial, 16),
                Revocation(x509.ReasonFlags(reason), utc(at), _ts(invalidity), by),
            )

    @staticmethod
    def _domain(row: Any) -> CertificateRecord:
        revocation = None
        if row.rev_reason is not None:
            revocation = Revocation(
                x509.ReasonFlags(row.rev_reason),
                utc(row.rev_at),
                _ts(row.rev_invalidity),
                row.rev_by,
            )
        return CertificateRecord(
            serial=int(row.serial_number, 16),
            issuer=row.issuer,
            profile=row.profile,
            common_name=row.common_name,
            names=tuple(row.names or ()),
            status=CertStatus(row.status),
            created_at=utc(row.created_at),
            service_id=row.service_id,
            not_before=_ts(row.not_before),
            not_after=_ts(row.not_after),
            fingerprint=row.fingerprint_sha256,
            certificate=_cert(row.pem),
            server_generated_key=row.server_generated_key,
            renewed_from=int(row.renewed_from, 16) if row.renewed_from else None,
            revocation=revocation,
            metadata=row.metadata or {},
        )


def _rowcount(result: Any) -> int:
    return int(cast(CursorResult[Any], result).rowcount)


_CAS = cast(Table, CARow.__table__)
_CRLS = cast(Table, CRLRow.__table__)
# the newest CRL found through the (issuer, number) unique index, joined to its CA's row
_OTHER_CRLS = _CRLS.alias("newest")  # its own name, so the subquery is not correlated away
_NEWEST_CRL = (
    select(func.max(_OTHER_CRLS.c.number))
    .where(_OTHER_CRLS.c.issuer == bindparam("b_issuer"))
    .scalar_subquery()
)
_CRL_STATE = (
    select(
        _CAS.c.crl_stale_since,
        _CAS.c.last_revoked_at,
        _CRLS.c.number,
        _CRLS.c.this_update,
        _CRLS.c.next_update,
    )
    .select_from(
        _CAS.outerjoin(_CRLS, and_(_CRLS.c.issuer == _CAS.c.name, _CRLS.c.number == _NEWEST_CRL))
    )
    .where(_CAS.c.name == bindparam("b_issuer"))
)


class SqlCRLRepository(Repo):
    def add(self, crl: CRLRecord) -> None:
        self.s.add(
            CRLRow(
                issuer=crl.issuer,
                number=crl.number,
                this_update=utc(crl.this_update),
                next_update=utc(crl.next_update),
                der=crl.der,
            )
        )
        self.s.flush()
        self.c.execute(update(_CAS).where(_CAS.c.name == crl.issuer).values(crl_stale_since=None))

    def latest(self, issuer: str) -> CRLRecord | None:
        row = self.s.scalars(
            select(CRLRow).where(CRLRow.issuer == issuer).order_by(CRLRow.number.desc()).limit(1)
        ).first()
        return self._domain(row) if row else None

    def get(self, issuer: str, number: int) -> CRLRecord | None:
        row = self.s.scalars(
            select(CRLRow).where(CRLRow.issuer == issuer, CRLRow.number == number)
        ).first()
        return self._domain(row) if row else None

    def add_delta(self, crl: CRLRecord) -> None:
        assert crl.base_number is not None
        self.s.add(
            DeltaCRLRow(
                issuer=crl.issuer,
                number=crl.number,
                base_number=crl.base_number,
                this_update=utc(crl.this_update),
                next_update=utc(crl.next_update),
                last_revoked_at=_ts(crl.last_revoked_at),
                der=crl.der,
            )
        )
        self.s.flush()

    def latest_delta(self, issuer: str) -> CRLRecord | None:
        row = self.s.scalars(
            select(DeltaCRLRow)
            .where(DeltaCRLRow.issuer == issuer)
            .order_by(DeltaCRLRow.number.desc())
            .limit(1)
        ).first()
        if row is None:
            return None
        return CRLRecord(
            row.issuer,
            row.number,
            utc(row.this_update),
            utc(row.next_update),
            row.der,
            row.base_number,
            _ts(row.last_revoked_at),
        )

    def state(self, issuer: str) -> CRLState | None:
        row = self.c.execute(_CRL_STATE, {"b_issuer": issuer}).first()
        if row is None:
            return None
        return CRLState(
            issuer,
            _ts(row.crl_stale_since),
            _ts(row.last_revoked_at),
            row.number or 0,
            _ts(row.this_update),
            _ts(row.next_update),
        )

    @staticmethod
    def _domain(row: CRLRow) -> CRLRecord:
        return CRLRecord(
            row.issuer, row.number, utc(row.this_update), utc(row.next_update), row.der
        )


_AUDIT = cast(Table, AuditRow.__table__)
_AUDIT_HEAD = Prepared(select(_AUDIT.c.seq, _AUDIT.c.hash).order_by(_AUDIT.c.seq.desc()).limit(1))
_AUDIT_INSERT = Prepared(insert(_AUDIT))


class SqlAuditRepository(Repo):
    def head(self) -> AuditHead | None:
        self.serialise("pkiforge.audit_log")  # one appender at a time across replicas
        row = self.unit.run(_AUDIT_HEAD).first()
        return AuditHead(row.seq, row.hash) if row else None

    def add(self, entry: AuditEntry) -> None:
        self.unit.run(
            _AUDIT_INSERT,
            {
                "seq": entry.seq,
                "at": utc(entry.at),
                "actor": entry.actor,
                "address": entry.address,
                "action": entry.action,
                "subject": entry.subject,
                "details": entry.details,
                "prev_hash": entry.prev_hash,
                "hash": entry.hash,
            },
        )

    def iterate(self) -> Iterator[AuditEntry]:
        result = self.c.execution_options(yield_per=500).execute(
            select(_AUDIT).order_by(_AUDIT.c.seq)
        )
        for row in result:
            yield self._domain(row)

    def recent(
        self, limit: int, action: str | None = None, subject: str | None = None
    ) -> list[AuditEntry]:
        stmt = select(_AUDIT).order_by(_AUDIT.c.seq.desc()).limit(limit)
        if action:
            stmt = stmt.where(_AUDIT.c.action == action)
        if subject:
            stmt = stmt.where(_AUDIT.c.subject == subject)
        return [self._domain(r) for r in self.c.execute(stmt)]

    @staticmethod
    def _domain(row: Any) -> AuditEntry:
        return AuditEntry(
            row.seq,
            utc(row.at),
            row.actor,
            row.address,
            row.action,
            row.subject,
            dict(row.details or {}),
            row.prev_hash,
            row.hash,
        )
