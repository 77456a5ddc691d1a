"""Revocation use-cases: revoke with an RFC 5280 reason, publish a signed CRL per issuer."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from pkiforge.ca.context import CAContext
from pkiforge.ca.crl import build_crl, reason_name
from pkiforge.ca.models import (
    OPERATOR,
    SYSTEM,
    Actor,
    CertificateRecord,
    CertStatus,
    CRLRecord,
    Revocation,
)
from pkiforge.clock import utc
from pkiforge.errors import Conflict, InvalidInput, NotFound


class RevocationService:
    """Revoke certificates and sign CRLs."""

    def __init__(self, ctx: CAContext) -> None:
        self.ctx = ctx

    def revoke(
        self,
        serial: int,
        reason: x509.ReasonFlags,
        *,
        invalidity_date: dt.datetime | None = None,
        actor: Actor = OPERATOR,
    ) -> CertificateRecord:
        """Mark a certificate revoked; it appears on its issuer's next CRL.

        Raises:
            NotFound: unknown serial. Conflict: already revoked, or never issued.
            InvalidInput: invalidity date in the future.
        """
        now = self.ctx.clock.now()
        if invalidity_date is not None and utc(invalidity_date) > now:
            raise InvalidInput("invalidity date is in the future", field="invalidity_date")
        with self.ctx.store.transaction() as tx:
            record = tx.certificates.get(serial)
            if record is None:
                raise NotFound(f"no certificate with serial {serial:x}", field="serial")
            if record.status is CertStatus.REVOKED and record.revocation is not None:
                raise Conflict(
                    f"certificate {record.serial_hex} is already revoked "
                    f"({reason_name(record.revocation.reason)})",
                    field="serial",
                )
            if record.status is not CertStatus.ACTIVE:
                raise Conflict(
                    f"certificate {record.serial_hex} is {record.status.value}; "
                    "nothing was issued to revoke",
                    field="serial",
                )
            revocation = Revocation(reason, now, invalidity_date, str(actor))
            tx.certificates.revoke(serial, revocation)
            self.ctx.audit(
                tx,
                actor,
                "cert.revoke",
                record.serial_hex,
                {
                    "reason": reason_name(reason),
                    "issuer": record.issuer,
                    "invalidity_date": invalidity_date,
                },
            )
        return replace(record, status=CertStatus.REVOKED, revocation=revocation)

    def generate_crl(
        self, issuer: str, *, key_ref: str | None = None, actor: Actor = OPERATOR
    ) -> CRLRecord:
        """Sign and store the next CRL of `issuer` (entries of unexpired revoked certificates).

        Raises:
            NotFound: unknown CA. Conflict: key offline. BadPassphrase.
        """
        ca = self.ctx.get_ca(issuer)
        signer = self.ctx.signer(ca, key_ref)
        now = utc(self.ctx.clock.now()).replace(microsecond=0)
        with self.ctx.store.transaction() as tx:
            fresh = tx.cas.get(issuer, for_update=True)  # serialises CRL numbers
            assert fresh is not None
            number = fresh.crl_number + 1
            # RFC 5280 §3.3: entries may go once the certificate has expired
            entries = [
                r
                for r in tx.certificates.revoked(issuer)
                if r.not_after is None or r.not_after > now
            ]
            crl = build_crl(
                issuer=signer,
                number=number,
                this_update=now,
                next_update=now + self.ctx.config.crl_next_update,
                revoked=entries,
            )
            record = CRLRecord(
                issuer,
                number,
                now,
                now + self.ctx.config.crl_next_update,
                crl.public_bytes(Encoding.DER),
            )
            tx.cas.update(replace(fresh, crl_number=number))
            tx.crls.add(record)
            self.ctx.audit(
                tx, actor, "crl.generate", issuer, {"crl_number": number, "entries": len(entries)}
            )
        self.ctx.forget_cas()
        return record

    def current_crl(self, issuer: str, actor: Actor = SYSTEM) -> CRLRecord:
        """The newest CRL while it is less than half-way to nextUpdate, else a fresh one.

        Raises:
            NotFound: unknown CA. Conflict: its key is offline and no fresh CRL exists.
        """
        self.ctx.get_ca(issuer)
        with self.ctx.store.transaction(readonly=True) as tx:
            crl = tx.crls.latest(issuer)
        now = self.ctx.clock.now()
        if crl is not None and now < crl.this_update + (crl.next_update - crl.this_update) / 2:
            return crl
        try:
            return self.generate_crl(issuer, actor=actor)
        except Conflict:
            if crl is not None and now < crl.next_update:
                return crl  # offline key: serve the published CRL until it lapses
            raise

    def latest_crl(self, issuer: str) -> CRLRecord:
        """The newest stored CRL.

        Raises:
            NotFound: unknown CA or no CRL yet.
        """
        self.ctx.get_ca(issuer)
        with self.ctx.store.transaction(readonly=True) as tx:
            crl = tx.crls.latest(issuer)
        if crl is None:
            raise NotFound(f"no CRL has been generated for {issuer!r} yet", field="issuer")
        return crl

    def is_revoked(self, serial: int) -> CertificateRecord:
        """The record (with its revocation, if any) for a revocation check.

        Raises:
            NotFound: unknown serial.
        """
        with self.ctx.store.transaction(readonly=True) as tx:
            record = tx.certificates.get(serial)
        if record is None:
            raise NotFound(f"no certificate with serial {serial:x}", field="serial")
        return record
