"""Delegated OCSP responders and cached answers (`ca/ports.py` OCSPRepository), in SQL."""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import Table, insert, select

from pkiforge.ca.models import CertStatus, format_serial
from pkiforge.ca.ocsp_records import CachedAnswer, ResponderRecord
from pkiforge.clock import utc
from pkiforge.store.tables import CertificateRow, OCSPAnswerRow, OCSPResponderRow
from pkiforge.store.unit import Repo

_RESPONDERS = cast(Table, OCSPResponderRow.__table__)
_ANSWERS = cast(Table, OCSPAnswerRow.__table__)
_CERTS = cast(Table, CertificateRow.__table__)
# the certificate status an answer was signed for (an `unknown` answer is never kept)
_SIGNED_FOR = {"good": CertStatus.ACTIVE.value, "revoked": CertStatus.REVOKED.value}


class SqlOCSPRepository(Repo):
    def responder(self, issuer: str, valid_at: dt.datetime) -> ResponderRecord | None:
        row = self.c.execute(
            select(_RESPONDERS)
            .where(_RESPONDERS.c.issuer == issuer, _RESPONDERS.c.not_after > utc(valid_at))
            .order_by(_RESPONDERS.c.not_after.desc())
            .limit(1)
        ).first()
        if row is None:
            return None
        return ResponderRecord(
            row.issuer,
            x509.load_der_x509_certificate(row.cert_der),
            bytes(row.sealed_key),
            utc(row.created_at),
        )

    def add_responder(self, record: ResponderRecord) -> None:
        cert = record.certificate
        self.c.execute(
            insert(_RESPONDERS).values(
                serial_number=format_serial(cert.serial_number),
                issuer=record.issuer,
                not_after=cert.not_valid_after_utc,
                created_at=utc(record.created_at),
                cert_der=cert.public_bytes(Encoding.DER),
                sealed_key=record.sealed_key,
            )
        )

    def answer(self, issuer: str, serial: int, algorithm: str) -> CachedAnswer | None:
        row = self.c.execute(
            select(_ANSWERS).where(
                _ANSWERS.c.serial_number == format_serial(serial),
                _ANSWERS.c.issuer == issuer,
                _ANSWERS.c.algorithm == algorithm,
            )
        ).first()
        if row is None:
            return None
        return CachedAnswer(
            issuer,
            serial,
            algorithm,
            row.status,
            utc(row.this_update),
            utc(row.next_update),
            bytes(row.der),
        )

    def keep(self, answer: CachedAnswer) -> bool:
        key = format_serial(answer.serial)
        # the certificate's row, held to the end of this transaction: a revocation (which
        # updates it, then drops the cached answers) either committed before, and is seen
        # here, or waits for this commit and drops what is stored now (SQLite: one writer)
        status = self.c.execute(
            select(_CERTS.c.status).where(_CERTS.c.serial_number == key).with_for_update()
        ).scalar()
        if status != _SIGNED_FOR.get(answer.status):
            return False
        values: dict[str, Any] = {
            "status": answer.status,
            "this_update": utc(answer.this_update),
            "next_update": utc(answer.next_update),
            "der": answer.der,
        }
        self.c.execute(
            _upsert(self.unit.dialect)
            .values(serial_number=key, issuer=answer.issuer, algorithm=answer.algorithm, **values)
            .on_conflict_do_update(
                index_elements=["serial_number", "issuer", "algorithm"], set_=values
            )
        )
        return True

    def due(self, before: dt.datetime, limit: int) -> list[tuple[str, int, str]]:
        rows = self.c.execute(
            select(_ANSWERS.c.issuer, _ANSWERS.c.serial_number, _ANSWERS.c.algorithm)
            .where(_ANSWERS.c.next_update < utc(before))
            .order_by(_ANSWERS.c.next_update)
            .limit(limit)
        )
        return [(row.issuer, int(row.serial_number, 16), row.algorithm) for row in rows]


def _upsert(dialect: str) -> Any:
    """`INSERT ... ON CONFLICT` of the dialect (SQLite and PostgreSQL both speak it)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(_ANSWERS)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(_ANSWERS)
