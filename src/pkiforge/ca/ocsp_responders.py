"""Delegated OCSP responders (RFC 6960 §4.2.2.2): the CA key signs a short-lived responder
certificate now and then, and the responder's key signs the answers.

Each CA in service whose key is held here gets a responder certificate (EKU id-kp-OCSPSigning,
id-pkix-ocsp-nocheck, `ocsp.responder_validity` long, capped at the CA's own notAfter), recorded
before it is signed like every certificate. Its key is sealed by the key store (encrypted under
the CA passphrase as CA key files are) and kept in the database, so every replica signs with it
and a process without the CA key files (`pkiforge publish serve`) can too. A successor is made
once `ocsp.responder_renew_at` of the lifetime has passed: by the scheduler's `ocsp-refresh`
job, or by the first answer that needs one; a rotation makes its successor CA's first one.
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import NameOID

from pkiforge.ca.ca_certs import CAValidity
from pkiforge.ca.context import CAContext
from pkiforge.ca.models import (
    RESPONDER_PROFILE,
    SYSTEM,
    Actor,
    CARecord,
    CertificateRecord,
    CertStatus,
)
from pkiforge.ca.ocsp_records import ResponderRecord
from pkiforge.clock import utc
from pkiforge.errors import BadPassphrase, Conflict, NotFound
from pkiforge.x509.extensions import add_ocsp_responder_extensions
from pkiforge.x509.keys import as_issuer_public_key, generate_key


@dataclass(frozen=True)
class Responder:
    """A responder whose key is loaded; never logged (its repr hides the key)."""

    issuer: str
    certificate: x509.Certificate
    key: CertificateIssuerPrivateKeyTypes
    renew_at: dt.datetime

    def __repr__(self) -> str:
        return f"Responder({self.issuer!r}, serial={self.certificate.serial_number:x})"


class Responders:
    """The current responder of each CA: from memory, the store, or made now."""

    def __init__(self, ctx: CAContext) -> None:
        self.ctx = ctx
        self._current: dict[str, Responder] = {}
        self._lock = threading.Lock()  # one responder made (or key unsealed) at a time

    def current(self, ca: CARecord) -> Responder:
        """The responder that signs `ca`'s answers now.

        Raises:
            Conflict, NotFound, BadPassphrase: no usable responder is stored and the CA's key
            is not here (offline, or a process without it) to make one.
        """
        now = utc(self.ctx.clock.now())
        held = self._current.get(ca.name)
        if held is not None and now < held.renew_at:
            return held
        with self._lock:
            held = self._current.get(ca.name)
            if held is not None and now < held.renew_at:
                return held
            responder = self._stored(ca, now)
            if responder is None or now >= responder.renew_at:
                try:
                    responder = self._make(ca, SYSTEM)
                except (Conflict, NotFound, BadPassphrase):
                    if responder is None:
                        raise  # nothing valid to sign with
                    # a stored one is still valid: sign with it until the CA key is here
            self._current[ca.name] = responder
            return responder

    def rotate_due(self, actor: Actor = SYSTEM) -> list[str]:
        """Make a successor for each CA in service with its key here whose responder is
        missing or past its renewal point; return their names."""
        made = []
        now = utc(self.ctx.clock.now())
        for ca in self.ctx.cas(fresh=True).values():
            if not ca.in_service or ca.key_ref is None or ca.certificate is None:
                continue
            with self._lock:
                stored = self._stored(ca, now)
                if stored is not None and now < stored.renew_at:
                    continue
                self._current[ca.name] = self._make(ca, actor)
            made.append(ca.name)
        return made

    def _stored(self, ca: CARecord, now: dt.datetime) -> Responder | None:
        with self.ctx.store.transaction(readonly=True) as tx:
            record = tx.ocsp.responder(ca.name, now)
        if record is None:
            return None
        held = self._current.get(ca.name)
        if held is not None and held.certificate == record.certificate:
            return held  # the same one: no need to unseal its key again
        return self._loaded(record)

    def _loaded(self, record: ResponderRecord) -> Responder:
        cert = record.certificate
        return Responder(
            record.issuer, cert, self.ctx.keys.unseal(record.sealed_key), _renew_at(self.ctx, cert)
        )

    def _make(self, ca: CARecord, actor: Actor) -> Responder:
        """Sign a new responder certificate with the CA key (recorded before it is signed).

        Raises:
            Conflict, NotFound, BadPassphrase: the CA key cannot be used here.
        """
        signer = self.ctx.signer(ca, retired=True)
        cfg = self.ctx.config
        key = generate_key(cfg.ocsp.responder_key_type)
        public_key = as_issuer_public_key(key.public_key())
        now = self.ctx.clock.now()
        window = CAValidity.starting(
            now,
            cfg.ocsp.responder_validity,
            cfg.backdate,
            cap=signer.certificate.not_valid_after_utc,
        )
        cn = f"{ca.name} OCSP responder"
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, cfg.organization),
                x509.NameAttribute(NameOID.COMMON_NAME, cn[:64]),
            ]
        )

        def sign(serial: int) -> x509.Certificate:
            builder = (
                x509.CertificateBuilder()
                .subject_name(subject)
                .issuer_name(signer.certificate.subject)
                .public_key(public_key)
                .serial_number(serial)
                .not_valid_before(window.not_before)
                .not_valid_after(window.not_after)
            )
            builder = add_ocsp_responder_extensions(
                builder, public_key=public_key, issuer=signer.certificate
            )
            return signer.sign_certificate(builder)

        draft = CertificateRecord(
            serial=0,
            issuer=ca.name,
            profile=RESPONDER_PROFILE,
            common_name=cn,
            names=(),
            status=CertStatus.PENDING,
            created_at=now,
        )
        sealed = self.ctx.keys.seal(key)
        reserved, cert = self.ctx.sign_recorded(draft, sign)
        with self.ctx.store.transaction() as tx:
            self.ctx.complete(tx, reserved, cert)
            tx.ocsp.add_responder(ResponderRecord(ca.name, cert, sealed, now))
            self.ctx.audit(
                tx,
                actor,
                "ocsp.responder",
                ca.name,
                {"serial": f"{cert.serial_number:x}", "not_after": cert.not_valid_after_utc},
            )
        return Responder(ca.name, cert, key, _renew_at(self.ctx, cert))


def _renew_at(ctx: CAContext, cert: x509.Certificate) -> dt.datetime:
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    return start + (end - start) * ctx.config.ocsp.responder_renew_at
