"""Rotate an intermediate: a successor with a new key takes over issuing at once.

Online (root key here): the successor is claimed as a `pending` row first (so two rotations
cannot both make it), given a key, certified by the root, and made active in the transaction
that retires its predecessor. With the root offline, `rotate_csr` stops after the key and
returns a CSR; `HierarchyService.import_intermediate` completes the rotation with the signed
certificate. A rotation cut short (no signature yet) resumes from the pending successor's key.

Once the successor is committed, the rotation (which holds the CA keys) also makes its delegated
OCSP responder, so that a process without CA keys (`publish serve`) can answer for the new
generation at once rather than `tryLater` until the `ocsp-refresh` job runs.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes

from pkiforge.ca.ca_certs import (
    MAX_CA_RECORD_NAME,
    ROOT_NAME,
    build_intermediate_csr,
    ca_subject,
    generation_name,
    lineage,
)
from pkiforge.ca.generations import retire_predecessors
from pkiforge.ca.hierarchy import HierarchyService
from pkiforge.ca.models import OPERATOR, Actor, CAKind, CARecord, CAStatus
from pkiforge.ca.ocsp_responders import Responders
from pkiforge.errors import Conflict, InvalidInput, PkiError
from pkiforge.x509.keys import KeyType, generate_key, key_type_of

log = logging.getLogger("pkiforge.ca")


@dataclass(frozen=True)
class Rotated:
    """What a rotation did: the successor now issuing and the predecessor(s) retired."""

    successor: CARecord
    retired: tuple[str, ...]


class RotationService:
    """`pkiforge ca rotate` and `POST /api/v1/ca/{name}/rotate`."""

    def __init__(self, hierarchy: HierarchyService, responders: Responders | None = None) -> None:
        self.hierarchy = hierarchy
        self.ctx = hierarchy.ctx
        self.responders = responders

    def rotate(
        self,
        name: str,
        key_type: KeyType | None = None,
        validity: dt.timedelta | None = None,
        *,
        root_key_ref: str | None = None,
        actor: Actor = OPERATOR,
    ) -> Rotated:
        """Give intermediate `name` a successor signed by the root, whose key must be here.

        Raises:
            NotFound: unknown CA. Conflict: the root, not active, or the root key is offline.
            InvalidInput: the name leaves no room for a generation suffix.
        """
        current, pending = self._current(name)
        root = self.ctx.signer(self.ctx.get_ca(ROOT_NAME), root_key_ref)  # before any key
        successor, key = self._successor_key(current, pending, key_type, actor)
        assert successor.key_ref is not None
        cert = self.hierarchy.certify_key(
            successor.name,
            key.public_key(),
            root,
            self.ctx.config.intermediate_validity if validity is None else validity,
            actor,
        )
        active = self.hierarchy.active_intermediate(successor.name, cert, successor.key_ref)
        with self.ctx.store.transaction() as tx:
            locked = tx.cas.get(successor.name, for_update=True)
            if locked is None or locked.status is not CAStatus.PENDING:
                raise Conflict(f"CA {successor.name!r} was completed meanwhile", field="name")
            tx.cas.update(active)
            retired = retire_predecessors(self.ctx, tx, active, actor)
        self.ctx.forget_cas()
        self._prepare_responder(active)
        return Rotated(active, tuple(retired))

    def _prepare_responder(self, successor: CARecord) -> None:
        """Make the successor's OCSP responder while its key is here (best effort: the
        rotation is committed; if this fails, `ocsp-refresh` or a `serve` answer makes it)."""
        if self.responders is None:
            return
        try:
            self.responders.current(successor)
        except PkiError as exc:
            log.warning(
                "rotated to %s, but its OCSP responder was not made (%s); the ocsp-refresh "
                "job makes it later",
                successor.name,
                exc,
            )

    def rotate_csr(
        self, name: str, key_type: KeyType | None = None, actor: Actor = OPERATOR
    ) -> tuple[CARecord, x509.CertificateSigningRequest]:
        """Offline root: make the successor's key here and a CSR for the root to sign; the
        predecessor issues until `ca import-intermediate SUCCESSOR --cert SIGNED.pem`.

        Raises:
            NotFound: unknown CA. Conflict: the root, or not active.
        """
        current, pending = self._current(name)
        successor, key = self._successor_key(current, pending, key_type, actor)
        subject = ca_subject(self.ctx.config.organization, lineage(current.name)[0], root=False)
        return successor, build_intermediate_csr(key, subject)

    def _current(self, name: str) -> tuple[CARecord, CARecord | None]:
        """The generation issuing now, and a successor a cut-short rotation left pending."""
        generations = self.ctx.generations(name)
        if not generations:
            self.ctx.get_ca(name)  # raises NotFound
        newest = generations[0]
        if newest.kind is CAKind.ROOT:
            raise Conflict(
                "the root is not rotated here: it is the trust anchor every service installs; "
                "rotate the intermediates",
                field="name",
            )
        active = [ca for ca in generations if ca.status is CAStatus.ACTIVE]
        if not active:
            raise Conflict(
                f"CA {name!r} has no active generation to rotate ({newest.name!r} is "
                f"{newest.status.value})",
                field="name",
            )
        pending = newest if newest.status is CAStatus.PENDING else None
        if pending is not None and lineage(pending.name)[1] < lineage(active[0].name)[1]:
            pending = None  # an older CSR (the first intermediate's), not a successor
        return active[0], pending

    def _successor_key(
        self,
        current: CARecord,
        pending: CARecord | None,
        key_type: KeyType | None,
        actor: Actor,
    ) -> tuple[CARecord, CertificateIssuerPrivateKeyTypes]:
        """The pending successor and its key: the one a cut-short rotation left, or new."""
        if pending is not None and pending.key_ref is not None:
            key = self.ctx.load_key(pending.name, pending.key_ref)
            if key_type is not None and key_type_of(key.public_key()) != key_type:
                raise Conflict(
                    f"a {key_type_of(key.public_key())} key for {pending.name!r} is waiting "
                    "from a rotation cut short: rotate without --key-type to finish it",
                    field="key_type",
                )
            return pending, key
        assert current.certificate is not None
        key = generate_key(key_type or key_type_of(current.certificate.public_key()))
        name = pending.name if pending is not None else self._claim(current, actor)
        created = pending.created_at if pending is not None else self.ctx.clock.now()
        key_ref = self.ctx.keys.save(name, key)
        with self.ctx.store.transaction() as tx:
            successor = CARecord(
                name, CAKind.INTERMEDIATE, CAStatus.PENDING, ROOT_NAME, None, key_ref, created
            )
            tx.cas.update(successor)
        self.ctx.forget_cas()
        return successor, key

    def _claim(self, current: CARecord, actor: Actor) -> str:
        """Record the successor's name as pending, so that no other rotation makes it too.

        Raises:
            Conflict: another rotation claimed it first. InvalidInput: the name is too long.
        """
        base, _ = lineage(current.name)
        newest = max(lineage(ca.name)[1] for ca in self.ctx.generations(base))
        name = generation_name(base, newest + 1)
        if len(name) > MAX_CA_RECORD_NAME:
            raise InvalidInput(
                f"CA name {base!r} is too long to rotate: a successor's name adds "
                f"'.{newest + 1}' and must stay within {MAX_CA_RECORD_NAME} characters",
                field="name",
            )
        claim = CARecord(
            name, CAKind.INTERMEDIATE, CAStatus.PENDING, ROOT_NAME, None, None, self.ctx.clock.now()
        )
        with self.ctx.store.transaction() as tx:
            tx.cas.add(claim)
            self.ctx.audit(
                tx, actor, "ca.rotate-start", base, {"predecessor": current.name, "successor": name}
            )
        self.ctx.forget_cas()
        return name
