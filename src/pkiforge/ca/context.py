"""What every use-case shares: ports, clock, config, and the record-before-sign protocol.

Record before sign (DESIGN.md): `reserve` commits a `pending` row for a fresh serial before
anything is signed; `complete` commits the signed certificate and its audit entry in one
transaction before the caller sees it. A crash in between leaves a `pending` row that still
accounts for the serial; a signing error marks the row `failed`.

The reservation need not be on disk before signing: the certificate exists only in this
process until `complete`'s durable commit, whose sync writes the reservation out too. So a
crash that loses the reservation loses the certificate with it, and nothing signed ever leaves
without its record.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes

from pkiforge.ca.audit import next_entry
from pkiforge.ca.ca_certs import keys_match, lineage
from pkiforge.ca.config import CAConfig
from pkiforge.ca.events import EventType
from pkiforge.ca.key_health import KeyHealth
from pkiforge.ca.models import Actor, CARecord, CAStatus, CertificateRecord, CertStatus
from pkiforge.ca.notifications import Notifier
from pkiforge.ca.ports import KeyStore, Store, Transaction
from pkiforge.ca.signing import SigningCA
from pkiforge.clock import Clock, SystemClock
from pkiforge.errors import BadPassphrase, Conflict, IntegrityError, NotFound, PkiError

SERIAL_ATTEMPTS = 5


def random_serial() -> int:
    """159 random bits: positive, at most 20 octets (RFC 5280 §4.1.2.2), > 64 bits of entropy."""
    return x509.random_serial_number()


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the DER certificate, lower-case hex."""
    return cert.fingerprint(hashes.SHA256()).hex()


@dataclass(frozen=True)
class _CAView:
    """The CAs as last read, the states they were read in, and when to ask the store again."""

    check_at: float
    states: tuple[tuple[str, CAStatus], ...]
    cas: dict[str, CARecord]


def _states(cas: dict[str, CARecord]) -> tuple[tuple[str, CAStatus], ...]:
    return tuple(sorted((ca.name, ca.status) for ca in cas.values()))


@dataclass
class CAContext:
    """The dependencies of the CA use-cases."""

    store: Store
    keys: KeyStore
    config: CAConfig
    clock: Clock = field(default_factory=SystemClock)
    serials: Callable[[], int] = random_serial
    # CAs change rarely and every request needs them: the cached view is kept while each CA's
    # name and status in the store stay the same, asked at most every `ca_check_seconds`, so
    # a change made by another process (a CA revoked on another replica) is seen within that
    # time, and one made here at once
    ca_check_seconds: float = 1.0
    # records events for webhook subscribers in the transaction of the change (None: nobody
    # subscribed, nothing recorded)
    notifier: Notifier | None = None
    monotonic: Callable[[], float] = time.monotonic  # what `ca_check_seconds` is counted on
    # what the last load of each CA's key found (the metrics' CA key availability)
    key_health: KeyHealth = field(default_factory=KeyHealth)
    _cas: _CAView | None = field(default=None, init=False, repr=False)
    _cas_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def cas(self, *, fresh: bool = False) -> dict[str, CARecord]:
        """Every CA by name, in the store's order (root first)."""
        with self._cas_lock:
            cached = self._cas
            if not fresh and cached is not None and self.monotonic() < cached.check_at:
                return cached.cas
        with self.store.transaction(readonly=True) as tx:
            if not fresh and cached is not None and tx.cas.states() == cached.states:
                loaded = cached.cas
            else:
                loaded = {ca.name: ca for ca in tx.cas.list()}
        view = _CAView(self.monotonic() + self.ca_check_seconds, _states(loaded), loaded)
        with self._cas_lock:
            self._cas = view
        return loaded

    def forget_cas(self) -> None:
        """Drop the cached CAs after changing one."""
        with self._cas_lock:
            self._cas = None

    def audit(
        self,
        tx: Transaction,
        actor: Actor,
        action: str,
        subject: str | None,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Append one entry to the hash chain inside `tx`."""
        tx.audit.add(
            next_entry(
                tx.audit.head(),
                at=self.clock.now(),
                actor=actor,
                action=action,
                subject=subject,
                details=details,
            )
        )

    def notify(
        self,
        tx: Transaction,
        type_: EventType,
        *,
        service_id: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        """Record an event for the subscribers that want it, inside `tx` (`ca/events.py`)."""
        if self.notifier is not None:
            self.notifier.emit(tx, type_, service_id=service_id, data=data)

    def get_ca(self, name: str) -> CARecord:
        """Raises NotFound."""
        ca = self.cas().get(name) or self.cas(fresh=True).get(name)
        if ca is None:
            raise NotFound(f"no CA named {name!r}", field="issuer")
        return ca

    def generations(self, name: str) -> list[CARecord]:
        """Every generation of the CA `name` belongs to (see `ca/rotation.py`), newest first."""
        base, _ = lineage(name)
        found = [ca for ca in self.cas().values() if lineage(ca.name)[0] == base]
        return sorted(found, key=lambda ca: lineage(ca.name)[1], reverse=True)

    def issuing_ca(self, name: str) -> CARecord:
        """The CA that issues under `name`: its newest active generation once it was rotated,
        else the CA itself whatever its state (the caller says why it cannot issue).

        Raises:
            NotFound: no CA of that name.
        """
        named = self.cas().get(name) or self.cas(fresh=True).get(name)
        active = [ca for ca in self.generations(name) if ca.status is CAStatus.ACTIVE]
        if active:
            return active[0]
        if named is None:
            raise NotFound(f"no CA named {name!r}", field="issuer")
        return named

    def signer(
        self, ca: CARecord, key_ref: str | None = None, *, retired: bool = False
    ) -> SigningCA:
        """Load the CA's key (or the one at `key_ref`) and check it matches its certificate;
        `retired` lets a rotated CA sign too (CRLs and OCSP answers for what it issued).

        Raises:
            Conflict: the CA is not active (or retired, when allowed) or its key is not here.
            BadPassphrase, NotFound: from the key store.
            IntegrityError: the key does not belong to the CA certificate.
        """
        usable = ca.in_service if retired else ca.status is CAStatus.ACTIVE
        if not usable or ca.certificate is None:
            raise Conflict(f"CA {ca.name!r} is {ca.status.value}, not active", field="issuer")
        ref = key_ref or ca.key_ref
        if ref is None:
            raise Conflict(
                f"the key of CA {ca.name!r} is kept offline; give its location to use it",
                field="key",
            )
        own = key_ref is None  # the CA's own key, not one given for this call (offline)
        try:
            key = self.load_key(ca.name, ref)
            if not keys_match(ca.certificate, key):
                raise IntegrityError(
                    f"the key given for CA {ca.name!r} does not match its certificate"
                )
        except PkiError as exc:
            if own:
                self.key_health.record(ca.name, False, str(exc))
            raise
        if own:
            self.key_health.record(ca.name, True)
        return SigningCA(ca.certificate, key)

    def check_keys(self) -> Mapping[str, bool]:
        """Load the key of every CA in service whose key is kept here (an offline key is
        absent on purpose and not checked); what each found is in `key_health`."""
        for ca in self.cas(fresh=True).values():
            if not ca.in_service or ca.key_ref is None:
                continue
            with contextlib.suppress(PkiError):  # recorded, and logged, by `signer`
                self.signer(ca, retired=True)
        return self.key_health.state()

    def load_key(self, name: str, key_ref: str) -> CertificateIssuerPrivateKeyTypes:
        """The private key of CA `name` from the key store.

        Raises:
            BadPassphrase: naming the CA (the key store knows only the file).
            NotFound: no key at `key_ref`.
        """
        try:
            return self.keys.load(key_ref)
        except BadPassphrase as exc:
            raise BadPassphrase(f"CA {name!r}: {exc}", ca=name) from None

    def reserve(self, draft: CertificateRecord) -> CertificateRecord:
        """Store a pending row under a fresh serial and commit; return that row."""
        for _ in range(SERIAL_ATTEMPTS):
            pending = replace(
                draft,
                serial=self.serials(),
                status=CertStatus.PENDING,
                created_at=self.clock.now(),
            )
            try:
                with self.store.transaction(durable=False) as tx:
                    tx.certificates.add(pending)
                return pending
            except Conflict:
                continue  # serial collision: draw again
        raise IntegrityError("could not allocate a unique serial number")

    def fail(self, serial: int) -> None:
        """Mark a reservation whose signing failed."""
        with self.store.transaction() as tx:
            record = tx.certificates.get(serial)
            if record is not None and record.status is CertStatus.PENDING:
                tx.certificates.update(replace(record, status=CertStatus.FAILED))

    def complete(
        self, tx: Transaction, reserved: CertificateRecord, cert: x509.Certificate
    ) -> CertificateRecord:
        """Turn the pending row `reserved` into the issued certificate inside `tx`.

        Raises:
            IntegrityError: the row is gone or no longer pending.
        """
        done = replace(
            reserved,
            status=CertStatus.ACTIVE,
            certificate=cert,
            fingerprint=fingerprint(cert),
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
        )
        if not tx.certificates.activate(done):
            raise IntegrityError(f"serial {reserved.serial:x} was not reserved before signing")
        return done

    def sign_recorded(
        self,
        draft: CertificateRecord,
        sign: Callable[[int], x509.Certificate],
    ) -> tuple[CertificateRecord, x509.Certificate]:
        """Reserve a serial, sign with it, mark failures; the caller completes."""
        reserved = self.reserve(draft)
        try:
            cert = sign(reserved.serial)
        except BaseException:
            self.fail(reserved.serial)
            raise
        return reserved, cert
