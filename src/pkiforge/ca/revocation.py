"""Revocation use-cases: revoke with an RFC 5280 reason, publish a signed CRL per issuer.

A revocation marks its issuer's CRL stale in its own transaction; the CRL served is replaced
when `ca/crl_freshness.py` says it is due, by whichever replica takes the issuer's row first.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import replace

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from pkiforge.ca.context import CAContext
from pkiforge.ca.crl import build_crl, reason_name
from pkiforge.ca.crl_freshness import PublishedCRLs, ServedCRL, rebuild_due
from pkiforge.ca.events import EventType
from pkiforge.ca.models import (
    OPERATOR,
    SYSTEM,
    Actor,
    CAKind,
    CertificateRecord,
    CertStatus,
    CRLRecord,
    CRLState,
    Revocation,
)
from pkiforge.ca.notifications import certificate_data
from pkiforge.ca.ocsp import OCSPResponder
from pkiforge.ca.ports import Transaction
from pkiforge.ca.signing import SigningCA
from pkiforge.clock import utc
from pkiforge.errors import Conflict, InvalidInput, NotFound, PkiError


class RevocationService:
    """Revoke certificates and sign CRLs."""

    def __init__(
        self,
        ctx: CAContext,
        published: PublishedCRLs | None = None,
        ocsp: OCSPResponder | None = None,
    ) -> None:
        self.ctx = ctx
        self.published = published or PublishedCRLs()
        # signs the revoked OCSP answer once the revocation is committed (the revocation
        # itself dropped the cached `good` one)
        self.ocsp = ocsp

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
            NotFound: unknown serial. Conflict: already revoked, never issued, or a CA
            certificate (see `CARevocationService`).
            InvalidInput: invalidity date in the future.
        """
        now = self.ctx.clock.now()
        if invalidity_date is not None and utc(invalidity_date) > now:
            raise InvalidInput("invalidity date is in the future", field="invalidity_date")
        with self.ctx.store.transaction() as tx:
            record = tx.certificates.get(serial)
            if record is None:
                raise NotFound(f"no certificate with serial {serial:x}", field="serial")
            if record.is_ca:
                raise Conflict(
                    f"certificate {record.serial_hex} belongs to CA {record.common_name!r}: "
                    "a CA is revoked with `pkiforge ca revoke NAME` (POST /api/v1/ca/NAME/"
                    "revoke), which also stops it issuing; the leaf path refuses CA "
                    "certificates",
                    field="serial",
                )
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
            tx.certificates.revoke(serial, revocation)  # marks the issuer's CRL stale
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
            self.ctx.notify(
                tx,
                EventType.CERTIFICATE_REVOKED,
                service_id=record.service_id,
                data=certificate_data(
                    EventType.CERTIFICATE_REVOKED, record, now, reason=reason_name(reason)
                ),
            )
        self.published.forget(record.issuer)
        if self.ocsp is not None:
            # committed already: if this fails, the first OCSP request signs it instead
            with suppress(PkiError):
                self.ocsp.presign(record.issuer, serial)
        return replace(record, status=CertStatus.REVOKED, revocation=revocation)

    def generate_crl(
        self, issuer: str, *, key_ref: str | None = None, actor: Actor = OPERATOR
    ) -> CRLRecord:
        """Sign and store the next CRL of `issuer` (entries of unexpired revoked certificates).

        Raises:
            NotFound: unknown CA. Conflict: key offline. BadPassphrase.
        """
        return self._publish(issuer, key_ref, actor, only_if_due=False)[0]

    def refresh_crl(self, issuer: str, *, actor: Actor = SYSTEM) -> CRLRecord:
        """The issuer's newest CRL, signed anew only if it is still due once this process
        holds the issuer's row: of the replicas that find it stale at once, one signs and the
        others read its CRL.

        Raises:
            NotFound: unknown CA. Conflict: key offline. BadPassphrase.
        """
        return self._publish(issuer, None, actor, only_if_due=True)[0]

    def refresh_if_due(self, issuer: str, *, actor: Actor = SYSTEM) -> CRLRecord | None:
        """Sign the issuer's next CRL if it is due (`ca/crl_freshness.py`), as serving would
        on the next request: the scheduler's CRL job, so that no request waits for it and a
        CRL nobody asks for is still replaced before its nextUpdate. None when not due, or
        when another process signed it first.

        Raises:
            NotFound: unknown CA. Conflict: key offline. BadPassphrase.
        """
        with self.ctx.store.transaction(readonly=True) as tx:
            state = tx.crls.state(issuer)
        if state is None:
            raise NotFound(f"no CA named {issuer!r}", field="issuer")
        if self.ctx.clock.now() < self._due(state):
            return None
        record, _ = self._publish(issuer, None, actor, only_if_due=True)
        return record if record.number > state.number else None

    def current_crl(self, issuer: str, actor: Actor = SYSTEM) -> ServedCRL:
        """The CRL to serve: the stored one until it is due (`ca/crl_freshness.py`), then a
        new one. With the key offline the stored one is served until its nextUpdate.

        Raises:
            NotFound: unknown CA. Conflict: its key is offline and no unexpired CRL exists.
        """
        self.ctx.get_ca(issuer)
        now = self.ctx.clock.now()
        served = self.published.get(issuer, now)
        if served is not None:
            return served
        record, state = self._stored(issuer)
        if record is not None and now < self._due(state):
            return self._serve(record, state)
        with self.published.lock(issuer):
            served = self.published.get(issuer, now)  # another thread has just replaced it
            if served is not None:
                return served
            try:
                record, state = self._publish(issuer, None, actor, only_if_due=True)
            except Conflict:
                if record is None or now >= record.next_update:
                    raise
                # offline key: serve the published CRL until it lapses
            return self._serve(record, state)

    def _serve(self, record: CRLRecord, state: CRLState) -> ServedCRL:
        served = ServedCRL(record, missing_revocations=state.stale_since is not None)
        self.published.put(record.issuer, served, self._due(state))
        return served

    def _due(self, state: CRLState) -> dt.datetime:
        cfg = self.ctx.config
        return rebuild_due(state, cfg.crl_rebuild_delay, cfg.crl_rebuild_within)

    def _stored(self, issuer: str) -> tuple[CRLRecord | None, CRLState]:
        """The issuer's newest stored CRL (None before the first) and its state."""
        with self.ctx.store.transaction(readonly=True) as tx:
            state = tx.crls.state(issuer)
            if state is None:
                raise NotFound(f"no CA named {issuer!r}", field="issuer")
            if state.number == 0:
                return None, state
            known = self.published.known(issuer)
            if known is not None and known.number == state.number:
                return known, state
            return tx.crls.get(issuer, state.number), state

    def _publish(
        self, issuer: str, key_ref: str | None, actor: Actor, *, only_if_due: bool
    ) -> tuple[CRLRecord, CRLState]:
        """Sign and store the next CRL (when `only_if_due`: only if the stored one is due)."""
        signer = self.ctx.signer(self.ctx.get_ca(issuer), key_ref, retired=True)
        with self.ctx.store.transaction() as tx:
            # one signer per issuer at a time (and strictly increasing numbers): a replica
            # that waited here finds the CRL the one before it signed, and keeps it
            locked = tx.cas.get(issuer, for_update=True)
            state = tx.crls.state(issuer)
            assert locked is not None and state is not None
            now = utc(self.ctx.clock.now())
            if only_if_due and now < self._due(state):
                latest = tx.crls.get(issuer, state.number)
                assert latest is not None
                return latest, state
            # a CA record written from a stale copy may carry an older number than the CRLs
            number = max(locked.crl_number, state.number) + 1
            record, entries = self._sign(tx, issuer, signer, number, now.replace(microsecond=0))
            tx.cas.update(replace(locked, crl_number=number))
            tx.crls.add(record)
            self.ctx.audit(
                tx, actor, "crl.generate", issuer, {"crl_number": number, "entries": entries}
            )
        self.ctx.forget_cas()
        self.published.forget(issuer)
        fresh = CRLState(
            issuer,
            stale_since=None,
            number=number,
            this_update=record.this_update,
            next_update=record.next_update,
        )
        return record, fresh

    def _sign(
        self, tx: Transaction, issuer: str, signer: SigningCA, number: int, now: dt.datetime
    ) -> tuple[CRLRecord, int]:
        """The CRL listing the issuer's revocations as read in `tx`, and its entry count."""
        # RFC 5280 §3.3: entries may go once the certificate has expired; a CA never lists
        # its own certificate (that is its issuer's CRL)
        entries = _Counted(
            tx.certificates.crl_entries(
                issuer, unexpired_at=now, leave_out=signer.certificate.serial_number
            )
        )
        cfg = self.ctx.config
        root = self.ctx.get_ca(issuer).kind is CAKind.ROOT
        next_update = now + (cfg.root_crl_next_update if root else cfg.crl_next_update)
        crl = build_crl(
            issuer=signer, number=number, this_update=now, next_update=next_update, revoked=entries
        )
        der = crl.public_bytes(Encoding.DER)
        return CRLRecord(issuer, number, now, next_update, der), entries.count

    def generate_delta(
        self, issuer: str, *, key_ref: str | None = None, actor: Actor = OPERATOR
    ) -> CRLRecord:
        """Sign and store a delta CRL of `issuer` against its newest full CRL.

        Raises:
            NotFound: unknown CA. Conflict: delta CRLs are off, no full CRL yet, key
            offline. BadPassphrase.
        """
        return self._delta(issuer, key_ref, actor, only_if_due=False)

    def current_delta(self, issuer: str, actor: Actor = SYSTEM) -> CRLRecord:
        """The delta CRL to serve: the stored one while it completes the full CRL served and
        no revocation has come since it was signed (nor half its lifetime gone), else a new
        one. The full CRL is brought up to date first.

        Raises:
            NotFound: unknown CA. Conflict: delta CRLs are off, or the key is offline and
            the stored delta is stale.
        """
        self._deltas_on()
        self.current_crl(issuer, actor)
        now = self.ctx.clock.now()
        with self.ctx.store.transaction(readonly=True) as tx:
            state = tx.crls.state(issuer)
            delta = tx.crls.latest_delta(issuer)
        assert state is not None
        if delta is not None and not _delta_due(delta, state, now):
            return delta
        with self.published.lock(issuer):
            return self._delta(issuer, None, actor, only_if_due=True)

    def _deltas_on(self) -> None:
        if not self.ctx.config.crl_delta:
            raise Conflict(
                "delta CRLs are off: set `crl.delta: true` in the configuration", field="delta"
            )

    def _delta(
        self, issuer: str, key_ref: str | None, actor: Actor, *, only_if_due: bool
    ) -> CRLRecord:
        self._deltas_on()
        signer = self.ctx.signer(self.ctx.get_ca(issuer), key_ref)
        with self.ctx.store.transaction() as tx:
            locked = tx.cas.get(issuer, for_update=True)  # one signer per issuer, as _publish
            state = tx.crls.state(issuer)
            assert locked is not None and state is not None
            if state.number == 0 or state.this_update is None:
                raise Conflict(
                    f"{issuer!r} has no full CRL yet for a delta CRL to complete: "
                    "sign one first (`pkiforge crl generate`)",
                    field="issuer",
                )
            now = utc(self.ctx.clock.now()).replace(microsecond=0)
            latest = tx.crls.latest_delta(issuer)
            if only_if_due and latest is not None and not _delta_due(latest, state, now):
                return latest
            # one sequence for full and delta CRLs (RFC 5280 §5.2.3)
            number = max(locked.crl_number, state.number, latest.number if latest else 0) + 1
            # every revocation the base does not list: those since its thisUpdate, and any
            # earlier one that committed after it was read (the stale mark holds the first)
            since = state.this_update
            if state.stale_since is not None:
                since = min(since, state.stale_since)
            entries = _Counted(
                tx.certificates.crl_entries(
                    issuer,
                    unexpired_at=now,
                    leave_out=signer.certificate.serial_number,
                    since=since,
                )
            )
            next_update = now + self.ctx.config.crl_delta_next_update
            if state.next_update is not None:
                next_update = min(next_update, state.next_update)
            crl = build_crl(
                issuer=signer,
                number=number,
                this_update=now,
                next_update=next_update,
                revoked=entries,
                delta_of=state.number,
            )
            record = CRLRecord(
                issuer,
                number,
                now,
                next_update,
                crl.public_bytes(Encoding.DER),
                base_number=state.number,
                last_revoked_at=state.last_revoked_at,
            )
            tx.cas.update(replace(locked, crl_number=number))
            tx.crls.add_delta(record)
            self.ctx.audit(
                tx,
                actor,
                "crl.generate",
                issuer,
                {"crl_number": number, "entries": entries.count, "delta_of": state.number},
            )
        self.ctx.forget_cas()
        return record

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


class _Counted:
    """An iterable that counts what it has yielded (entries streamed into a CRL)."""

    def __init__(self, items: Iterator[tuple[int, Revocation]]) -> None:
        self._items = items
        self.count = 0

    def __iter__(self) -> Iterator[tuple[int, Revocation]]:
        for item in self._items:
            self.count += 1
            yield item


def _delta_due(delta: CRLRecord, state: CRLState, now: dt.datetime) -> bool:
    """A delta must be replaced once a newer full CRL exists, a revocation came after it was
    signed, or half its lifetime is gone."""
    assert delta.base_number is not None
    halfway = delta.this_update + (delta.next_update - delta.this_update) / 2
    return (
        delta.base_number != state.number
        or delta.last_revoked_at != state.last_revoked_at
        or now >= halfway
    )
