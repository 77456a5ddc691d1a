"""Revoke an intermediate CA: it stops issuing, and its certificate goes on the root's CRL.

The CRL that lists an intermediate is the one its issuer, the root, signs (RFC 5280 §5). The
root key may be kept offline: the revocation is recorded all the same, and the root's CRL is
signed at once when the key is at hand, else later with
`pkiforge crl generate --issuer root --root-key FILE`. The root itself is never revoked: a
relying party trusts it as an anchor, not through a CRL, so it is retired and replaced instead.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

from cryptography import x509

from pkiforge.ca.ca_certs import ROOT_NAME, validate_ca_name
from pkiforge.ca.context import CAContext, fingerprint
from pkiforge.ca.crl import reason_name
from pkiforge.ca.models import (
    OPERATOR,
    Actor,
    CAKind,
    CARecord,
    CAStatus,
    CertificateRecord,
    CertStatus,
    CRLRecord,
    Revocation,
)
from pkiforge.ca.ports import Transaction
from pkiforge.ca.revocation import RevocationService
from pkiforge.clock import utc
from pkiforge.errors import Conflict, InvalidInput, NotFound, PkiError

ROOT_CRL_COMMAND = "pkiforge crl generate --issuer root --root-key FILE"


@dataclass(frozen=True)
class CARevoked:
    """What `revoke` did: the CA as it now stands, its revoked certificate, the root's CRL."""

    ca: CARecord
    certificate: CertificateRecord
    was_default_issuer: bool
    root_crl: CRLRecord | None  # None: the root's CRL could not be signed now
    root_crl_problem: str | None = None  # why not (the root key is offline ...)


class CARevocationService:
    """Revoke intermediate CAs."""

    def __init__(self, ctx: CAContext, revocation: RevocationService) -> None:
        self.ctx = ctx
        self.revocation = revocation

    def revoke(
        self,
        name: str,
        reason: x509.ReasonFlags = x509.ReasonFlags.unspecified,
        *,
        invalidity_date: dt.datetime | None = None,
        root_key_ref: str | None = None,
        actor: Actor = OPERATOR,
    ) -> CARevoked:
        """Mark the CA revoked and its certificate revoked, audit it, then sign the root's CRL.

        The first three happen in one transaction; the CRL follows when the root key can be
        used (here, or at `root_key_ref`), and its failure leaves the revocation in place.

        Raises:
            NotFound: no such CA. InvalidInput: malformed name, invalidity date in the future.
            Conflict: the root, a CA already revoked, or one with no certificate (pending).
        """
        name = validate_ca_name(name)
        now = self.ctx.clock.now()
        if invalidity_date is not None:
            invalidity_date = _checked_invalidity(invalidity_date, now)
        default = name == self.ctx.config.default_issuer
        with self.ctx.store.transaction() as tx:
            # for update: one revocation of a CA at a time
            ca, cert = _revocable(tx, tx.cas.get(name, for_update=True), name)
            record = self._revoke_certificate(
                tx, ca, cert, Revocation(reason, now, invalidity_date, str(actor))
            )
            assert record.revocation is not None
            revoked = replace(ca, status=CAStatus.REVOKED)
            tx.cas.update(revoked)
            self.ctx.audit(
                tx,
                actor,
                "ca.revoke",
                name,
                {
                    "serial": record.serial_hex,
                    "reason": reason_name(record.revocation.reason),
                    "invalidity_date": record.revocation.invalidity_date,
                    "default_issuer": default,
                },
            )
        self.ctx.forget_cas()
        self.revocation.published.forget(record.issuer)  # the root's CRL is stale here now
        try:
            crl = self.revocation.generate_crl(ROOT_NAME, key_ref=root_key_ref, actor=actor)
        except PkiError as exc:  # recorded all the same; the CRL waits for the root key
            return CARevoked(revoked, record, default, None, str(exc))
        return CARevoked(revoked, record, default, crl)

    def _revoke_certificate(
        self, tx: Transaction, ca: CARecord, cert: x509.Certificate, revocation: Revocation
    ) -> CertificateRecord:
        """The CA certificate's record, revoked (kept as it is when it already was)."""
        record = tx.certificates.get(cert.serial_number)
        if record is None:  # every CA certificate is recorded; should one not be, record it
            record = CertificateRecord(
                serial=cert.serial_number,
                issuer=ca.parent or ROOT_NAME,
                profile="intermediate-ca",
                common_name=ca.name,
                names=(),
                status=CertStatus.ACTIVE,
                created_at=self.ctx.clock.now(),
                not_before=cert.not_valid_before_utc,
                not_after=cert.not_valid_after_utc,
                fingerprint=fingerprint(cert),
                certificate=cert,
            )
            tx.certificates.add(record)
        if record.status is CertStatus.REVOKED and record.revocation is not None:
            # a CA certificate revoked as if it were a leaf, its CA left active: the entry
            # stays as the root's CRL lists it; the CA's own status is what is missing
            return record
        tx.certificates.revoke(record.serial, revocation)
        return replace(record, status=CertStatus.REVOKED, revocation=revocation)


def _checked_invalidity(value: dt.datetime, now: dt.datetime) -> dt.datetime:
    """The invalidity date in UTC, if it is a time that has passed.

    Raises:
        InvalidInput: in the future, or outside what UTC can express (year 1 at +14:00).
    """
    try:
        when = utc(value)
    except OverflowError:
        raise InvalidInput("invalidity date is out of range", field="invalidity_date") from None
    if when > now:
        raise InvalidInput("invalidity date is in the future", field="invalidity_date")
    return when


def _revocable(
    tx: Transaction, ca: CARecord | None, name: str
) -> tuple[CARecord, x509.Certificate]:
    """The CA and the certificate to revoke, if it is a CA that may be revoked.

    Raises:
        NotFound, Conflict.
    """
    if ca is None:
        raise NotFound(f"no CA named {name!r}", field="name")
    if ca.kind is CAKind.ROOT:
        raise Conflict(
            f"CA {name!r} is the root: the root is never revoked; retire/replace it (create a "
            "new root, move the intermediates under it, and distribute it as the trust anchor)",
            field="name",
        )
    if ca.status is CAStatus.REVOKED:
        record = tx.certificates.get(ca.certificate.serial_number) if ca.certificate else None
        rev = record.revocation if record is not None else None
        since = f" ({reason_name(rev.reason)}, {rev.revoked_at:%Y-%m-%d %H:%M:%S}Z)" if rev else ""
        raise Conflict(f"CA {name!r} is already revoked{since}", field="name")
    if ca.certificate is None:
        raise Conflict(
            f"CA {name!r} is {ca.status.value} and has no certificate to revoke", field="name"
        )
    return ca, ca.certificate
