"""Delegated OCSP responders and cached answers (`ca/ports.py` OCSPRepository), in SQL."""

from __future__ import annotations

import datetime as dt
from typing import cast

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import Table, bindparam, insert, select

from pkiforge.ca.models import CertStatus, format_serial
from pkiforge.ca.ocsp_records import CachedAnswer, ResponderRecord
from pkiforge.clock import utc
from pkiforge.store.prepared import Prepared
from pkiforge.store.tables import CertificateRow, OCSPAnswerRow, OCSPResponderRow
from pkiforge.store.unit import Repo

_RESPONDERS = cast(Table, OCSPResponderRow.__table__)
_ANSWERS = cast(Table, OCSPAnswerRow.__table__)
_CERTS = cast(Table, CertificateRow.__table__)
# every OCSP request that finds its answer cached runs only this (store/prepared.py)
_ANSWER = Prepared(
    select(_ANSWERS.c.status, _ANSWERS.c.this_update, _ANSWERS.c.next_update, _ANSWERS.c.der).where(
        _ANSWERS.c.serial_number == bindparam("b_serial"),
        _ANSWERS.c.issuer == bindparam("b_issuer"),
        _ANSWERS.c.algorithm == bindparam("b_alg"),
    )
)
_CERT_HELD = Prepared(
    select(_CERTS.c.status).where(_CERTS.c.serial_number == bindparam("b_serial")).with_for_update()
)
_UPSERT: dict[str, Prepared] = {}
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
        row = self.unit.run(
            _ANSWER, {"b_serial": format_serial(serial), "b_issuer": issuer, "b_alg": algorithm}
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
        status = self.unit.run(_CERT_HELD, {"b_serial": key}).first()
        if status is None or status.status != _SIGNED_FOR.get(answer.status):
            return False
        self.unit.run(
            _upsert(self.unit.dialect),
            {
                "serial_number": key,
                "issuer": answer.issuer,
                "algorithm": answer.algorithm,
                "status": answer.status,
                "this_update": utc(answer.this_update),
                "next_update": utc(answer.next_update),
                "der": answer.der,
            },
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


def _upsert(dialect: str) -> Prepared:
    """`INSERT ... ON CONFLICT DO UPDATE` of an answer (SQLite and PostgreSQL both speak it)."""
    stmt = _UPSERT.get(dialect)
    if stmt is None:
        from sqlalchemy.dialects import postgresql, sqlite

        make = postgresql.insert if dialect == "postgresql" else sqlite.insert
        insert_ = make(_ANSWERS)
        replaced = ("status", "this_update", "next_update", "der")
        stmt = _UPSERT[dialect] = Prepared(
            insert_.on_conflict_do_update(
                index_elements=["serial_number", "issuer", "algorithm"],
                set_={name: insert_.excluded[name] for name in replaced},
            )
        )
    return stmt
