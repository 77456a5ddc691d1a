"""SQLAlchemy repositories: convert rows to domain values and back; no business rules."""

from __future__ import annotations

import datetime as dt
import zlib
from collections.abc import Iterator
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import ColumnElement, and_, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError as SAIntegrityError
from sqlalchemy.orm import Session

from pkiforge.ca.models import (
    AuditEntry,
    CAKind,
    CARecord,
    CAStatus,
    CertificateQuery,
    CertificateRecord,
    CertStatus,
    CRLRecord,
    Revocation,
    format_serial,
)
from pkiforge.clock import utc
from pkiforge.errors import Conflict
from pkiforge.store.tables import AuditRow, CARow, CertificateRow, CRLRow, RevocationRow


def _pem(cert: x509.Certificate | None) -> str | None:
    return cert.public_bytes(Encoding.PEM).decode("ascii") if cert else None


def _cert(pem: str | None) -> x509.Certificate | None:
    return x509.load_pem_x509_certificate(pem.encode("ascii")) if pem else None


def _ts(value: dt.datetime | None) -> dt.datetime | None:
    # also on write: SQLite keeps the wall time and drops the offset, so store and compare UTC
    return utc(value) if value is not None else None


class SqlCARepository:
    def __init__(self, session: Session) -> None:
        self.s = session

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
            stmt = stmt.with_for_update()
        row = self.s.scalars(stmt).first()
        return self._domain(row) if row else None

    def list(self) -> list[CARecord]:
        rows = self.s.scalars(select(CARow).order_by(CARow.kind.desc(), CARow.created_at))
        return [self._domain(r) for r in rows]

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


class SqlCertificateRepository:
    def __init__(self, session: Session) -> None:
        self.s = session

    # Core statements, not ORM objects: these run inside the serialised write section of every
    # issuance, where the unit of work's bookkeeping was most of the cost

    def add(self, record: CertificateRecord) -> None:
        values = {"serial_number": format_serial(record.serial), **self._values(record)}
        try:
            with self.s.begin_nested():  # a concurrent writer may have taken the serial
                self.s.execute(insert(CertificateRow).values(**values))
        except SAIntegrityError:
            raise Conflict(f"serial {record.serial_hex} already exists", field="serial") from None

    def update(self, record: CertificateRecord) -> None:
        result = self.s.execute(
            update(CertificateRow)
            .where(CertificateRow.serial_number == format_serial(record.serial))
            .values(**self._values(record))
            .execution_options(synchronize_session=False)
        )
        if getattr(result, "rowcount", 1) == 0:
            raise Conflict(f"serial {record.serial_hex} is not stored", field="serial")

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
        }

    def get(self, serial: int) -> CertificateRecord | None:
        stmt = (
            select(CertificateRow, RevocationRow)
            .outerjoin(RevocationRow, RevocationRow.serial_number == CertificateRow.serial_number)
            .where(CertificateRow.serial_number == format_serial(serial))
            .execution_options(populate_existing=True)  # rows may have changed by Core UPDATE
        )
        found = self.s.execute(stmt).first()
        return self._domain(found[0], found[1]) if found else None

    def search(self, query: CertificateQuery) -> list[CertificateRecord]:
        stmt = (
            select(CertificateRow, RevocationRow)
            .outerjoin(RevocationRow, RevocationRow.serial_number == CertificateRow.serial_number)
            .where(*self._filters(query))
            .order_by(CertificateRow.created_at.desc(), CertificateRow.serial_number)
            .limit(query.limit)
            .offset(query.offset)
        )
        return [self._domain(c, r) for c, r in self.s.execute(stmt)]

    def count(self, query: CertificateQuery) -> int:
        stmt = select(func.count()).select_from(CertificateRow).where(*self._filters(query))
        return int(self.s.scalar(stmt) or 0)

    @staticmethod
    def _filters(q: CertificateQuery) -> list[ColumnElement[bool]]:
        c = CertificateRow
        out: list[ColumnElement[bool]] = []
        if q.issuer:
            out.append(c.issuer == q.issuer)
        if q.service_id:
            out.append(c.service_id == q.service_id)
        now = utc(q.now or dt.datetime.now(dt.UTC))
        if q.status is CertStatus.EXPIRED:
            out.append(and_(c.status == CertStatus.ACTIVE.value, c.not_after <= now))
        elif q.status is CertStatus.ACTIVE:
            out.append(and_(c.status == CertStatus.ACTIVE.value, c.not_after > now))
        elif q.status is not None:
            out.append(c.status == q.status.value)
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
        row = self.s.get(CertificateRow, format_serial(serial))
        if row is None:
            raise Conflict(f"serial {format_serial(serial)} is not stored", field="serial")
        try:
            with self.s.begin_nested():  # a failed INSERT must not poison the transaction
                row.status = CertStatus.REVOKED.value
                self.s.add(
                    RevocationRow(
                        serial_number=row.serial_number,
                        reason=revocation.reason.value,
                        revoked_at=utc(revocation.revoked_at),
                        invalidity_date=_ts(revocation.invalidity_date),
                        revoked_by=revocation.revoked_by,
                    )
                )
        except SAIntegrityError:
            raise Conflict(
                f"serial {row.serial_number} is already revoked", field="serial"
            ) from None

    def revoked(self, issuer: str) -> list[CertificateRecord]:
        stmt = (
            select(CertificateRow, RevocationRow)
            .join(RevocationRow, RevocationRow.serial_number == CertificateRow.serial_number)
            .where(CertificateRow.issuer == issuer)
            .order_by(RevocationRow.revoked_at)
        )
        return [self._domain(c, r) for c, r in self.s.execute(stmt)]

    @staticmethod
    def _domain(row: CertificateRow, rev: RevocationRow | None) -> CertificateRecord:
        revocation = None
        if rev is not None:
            revocation = Revocation(
                x509.ReasonFlags(rev.reason),
                utc(rev.revoked_at),
                _ts(rev.invalidity_date),
                rev.revoked_by,
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
        )


class SqlCRLRepository:
    def __init__(self, session: Session) -> None:
        self.s = session

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

    def latest(self, issuer: str) -> CRLRecord | None:
        row = self.s.scalars(
            select(CRLRow).where(CRLRow.issuer == issuer).order_by(CRLRow.number.desc()).limit(1)
        ).first()
        if row is None:
            return None
        return CRLRecord(
            row.issuer, row.number, utc(row.this_update), utc(row.next_update), row.der
        )


_AUDIT_LOCK = zlib.crc32(b"pkiforge.audit_log")


class SqlAuditRepository:
    def __init__(self, session: Session) -> None:
        self.s = session

    def last(self) -> AuditEntry | None:
        if self.s.get_bind().dialect.name == "postgresql":
            # one appender at a time across replicas, released at commit
            self.s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _AUDIT_LOCK})
        row = self.s.scalars(select(AuditRow).order_by(AuditRow.seq.desc()).limit(1)).first()
        return self._domain(row) if row else None

    def add(self, entry: AuditEntry) -> None:
        self.s.execute(
            insert(AuditRow).values(
                seq=entry.seq,
                at=utc(entry.at),
                actor=entry.actor,
                address=entry.address,
                action=entry.action,
                subject=entry.subject,
                details=entry.details,
                prev_hash=entry.prev_hash,
                hash=entry.hash,
            )
        )

    def iterate(self) -> Iterator[AuditEntry]:
        for row in self.s.scalars(
            select(AuditRow).order_by(AuditRow.seq).execution_options(yield_per=500)
        ):
            yield self._domain(row)

    def recent(
        self, limit: int, action: str | None = None, subject: str | None = None
    ) -> list[AuditEntry]:
        stmt = select(AuditRow).order_by(AuditRow.seq.desc()).limit(limit)
        if action:
            stmt = stmt.where(AuditRow.action == action)
        if subject:
            stmt = stmt.where(AuditRow.subject == subject)
        return [self._domain(r) for r in self.s.scalars(stmt)]

    @staticmethod
    def _domain(row: AuditRow) -> AuditEntry:
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
