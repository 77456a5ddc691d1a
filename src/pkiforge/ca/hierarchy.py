"""Hierarchy use-cases: initialise, add intermediates (online or via an offline root), import."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificatePublicKeyTypes,
)

from pkiforge.ca.ca_certs import (
    ROOT_NAME,
    CAValidity,
    build_intermediate,
    build_intermediate_csr,
    build_root,
    ca_subject,
    check_ca_certificate,
    check_signed_by,
    keys_match,
    lineage,
    validate_ca_name,
)
from pkiforge.ca.context import CAContext, fingerprint
from pkiforge.ca.generations import overlap, retire_predecessors
from pkiforge.ca.models import (
    OPERATOR,
    Actor,
    CAKind,
    CARecord,
    CAStatus,
    CertificateRecord,
    CertStatus,
)
from pkiforge.ca.ports import Transaction
from pkiforge.ca.signing import SigningCA
from pkiforge.errors import Conflict, InvalidCSR, InvalidInput
from pkiforge.x509.csr import csr_signature_valid, load_csr
from pkiforge.x509.keys import KeyType, as_issuer_public_key, check_public_key, generate_key

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


class InitState(Enum):
    """Where `initialize` stands: it finishes anything short of DONE."""

    EMPTY = "empty"  # no CA
    ROOT_PENDING = "root-pending"  # init stopped before the root was stored
    ROOT_ONLY = "root-only"  # a root and no intermediate (init stopped, or a root imported)
    DONE = "done"


@dataclass(frozen=True)
class InitOptions:
    """Choices for `init`; None takes the configured default."""

    root_key_type: KeyType | None = None
    intermediate_key_type: KeyType | None = None
    intermediate_name: str = "services"
    root_key_location: str | None = None  # keep the root key outside the data directory


class HierarchyService:
    """Create and inspect the CA hierarchy."""

    def __init__(self, ctx: CAContext) -> None:
        self.ctx = ctx

    def all(self) -> list[CARecord]:
        return list(self.ctx.cas().values())

    def get(self, name: str) -> CARecord:
        """Raises NotFound."""
        return self.ctx.get_ca(name)

    def chain(self, name: str) -> list[x509.Certificate]:
        """The CA's certificate followed by its issuers up to the root.

        Raises:
            NotFound: unknown CA. Conflict: the CA has no certificate yet.
        """
        chain: list[x509.Certificate] = []
        current: str | None = name
        while current is not None:
            ca = self.ctx.get_ca(current)
            if ca.certificate is None:
                raise Conflict(f"CA {ca.name!r} has no certificate yet ({ca.status.value})")
            chain.append(ca.certificate)
            current = ca.parent
        return chain

    def bundle(self, name: str) -> list[x509.Certificate]:
        """What relying parties of CA `name` need while it rotates: its current certificate,
        the predecessors still valid (`ca/generations.py`), then its issuers up to the root.

        Raises:
            NotFound: unknown CA. Conflict: no generation of it has a certificate yet.
        """
        current = self.ctx.issuing_ca(name)
        if current.kind is CAKind.ROOT:
            return self.chain(current.name)
        certs = overlap(self.ctx.generations(name), self.ctx.clock.now())
        if not certs:
            return self.chain(current.name)  # raises: no certificate yet
        parent = current.parent or ROOT_NAME
        return [*certs, *self.chain(parent)]

    def trust_bundle(self) -> list[x509.Certificate]:
        """Every CA certificate a relying party of this PKI may meet: the intermediates that
        issue or whose certificates are still valid (each with its predecessors after a
        rotation), then the root. Revoked, pending and expired CAs are left out."""
        now = self.ctx.clock.now()
        cas = self.all()
        certs = [
            cert
            for ca in cas
            if ca.kind is CAKind.INTERMEDIATE and (cert := ca.certificate) is not None
            if ca.status is CAStatus.ACTIVE
            or (ca.status is CAStatus.RETIRED and cert.not_valid_after_utc > now)
        ]
        roots = [ca.certificate for ca in cas if ca.kind is CAKind.ROOT and ca.certificate]
        return [*certs, *roots]

    def init_state(self) -> InitState:
        """How far `initialize` got here (a root alone may also be an imported one)."""
        cas = self.all()
        if not cas:
            return InitState.EMPTY
        root = _only_root(cas)
        if root is None:
            return InitState.DONE
        return InitState.ROOT_PENDING if root.status is CAStatus.PENDING else InitState.ROOT_ONLY

    def initialize(
        self, options: InitOptions, actor: Actor = OPERATOR, progress: Progress = _quiet
    ) -> list[CARecord]:
        """Create the root and the first intermediate, or finish an interrupted `initialize`.

        Short of done means a root and nothing else: a pending root with no certificate (init
        stopped before storing it) is started again from a new key; an active root (init
        stopped before the intermediate, or a root was imported) gets its first intermediate.
        A key file an interrupted run wrote is set aside (renamed), never overwritten or
        deleted.

        Raises:
            Conflict: already initialised, or the root's offline key was not given.
        """
        cas = self.all()
        found = _only_root(cas)  # what an interrupted run left, if anything
        if cas and found is None:
            raise Conflict("a CA is already initialised here; refusing to overwrite it")
        name = validate_ca_name(options.intermediate_name)
        cfg = self.ctx.config
        if found is not None and found.status is CAStatus.ACTIVE:
            progress(f"resuming an interrupted init: the root exists; adding {name}")
            root, root_signer = found, self._root_signer(found, options.root_key_location)
        else:
            if found is not None:
                progress("resuming an interrupted init: the root was never stored; signing anew")
                self._set_aside(ROOT_NAME, options.root_key_location, progress)
            progress(f"generating root key ({options.root_key_type or cfg.root_key_type})")
            root_key = generate_key(options.root_key_type or cfg.root_key_type)
            progress("signing root certificate")
            root = self._create_root(root_key, options.root_key_location, actor, found)
            assert root.certificate is not None
            root_signer = SigningCA(root.certificate, root_key)
        if found is not None:
            self._set_aside(name, None, progress)
        progress(
            f"generating {name} key ({options.intermediate_key_type or cfg.intermediate_key_type})"
        )
        key = generate_key(options.intermediate_key_type or cfg.intermediate_key_type)
        progress(f"signing {name} certificate")
        inter = self._create_intermediate(name, key, root_signer, cfg.intermediate_validity, actor)
        return [root, inter]

    def _root_signer(self, root: CARecord, location: str | None) -> SigningCA:
        if root.key_ref is None and location is None:
            raise Conflict(
                "the root has no intermediate yet and its key is kept offline: give the key's "
                "location (--root-key-out) to add the first one here, or use "
                "`pkiforge ca create-intermediate NAME --csr-out FILE`",
                field="key",
            )
        return self.ctx.signer(root, f"file:{location}" if root.key_ref is None else None)

    def _set_aside(self, name: str, location: str | None, progress: Progress) -> None:
        aside = self.ctx.keys.set_aside(name, location)
        if aside is not None:
            progress(f"a key file the interrupted run wrote was moved to {aside}")

    def _create_root(
        self,
        key: CertificateIssuerPrivateKeyTypes,
        location: str | None,
        actor: Actor,
        pending: CARecord | None = None,
    ) -> CARecord:
        cfg, now = self.ctx.config, self.ctx.clock.now()
        subject = ca_subject(cfg.organization, ROOT_NAME, root=True)
        validity = CAValidity.starting(now, cfg.root_validity, cfg.backdate)
        if pending is None:  # else the interrupted run's pending row is reused
            pending = CARecord(ROOT_NAME, CAKind.ROOT, CAStatus.PENDING, None, None, None, now)
            with self.ctx.store.transaction() as tx:
                tx.cas.add(pending)  # the root's own certificate row refers to it
            self.ctx.forget_cas()
        draft = _ca_draft(ROOT_NAME, subject, "root-ca", now)
        reserved, cert = self.ctx.sign_recorded(
            draft, lambda s: build_root(key, subject, serial=s, validity=validity)
        )
        key_ref = self.ctx.keys.save(ROOT_NAME, key, location)
        record = replace(
            pending, status=CAStatus.ACTIVE, certificate=cert, key_ref=None if location else key_ref
        )
        with self.ctx.store.transaction() as tx:
            self.ctx.complete(tx, reserved, cert)
            tx.cas.update(record)
            self.ctx.audit(
                tx,
                actor,
                "ca.init-root",
                ROOT_NAME,
                {"serial": f"{reserved.serial:x}", "offline_key": location is not None},
            )
        self.ctx.forget_cas()
        return record

    def _create_intermediate(
        self,
        name: str,
        key: CertificateIssuerPrivateKeyTypes,
        root: SigningCA,
        validity: dt.timedelta,
        actor: Actor,
    ) -> CARecord:
        cert = self.certify_key(name, key.public_key(), root, validity, actor)
        record = self.active_intermediate(name, cert, self.ctx.keys.save(name, key))
        with self.ctx.store.transaction() as tx:
            tx.cas.add(record)
            self.ctx.audit(
                tx, actor, "ca.create-intermediate", name, {"serial": f"{cert.serial_number:x}"}
            )
        self.ctx.forget_cas()
        return record

    def certify_key(
        self,
        name: str,
        public_key: CertificatePublicKeyTypes,
        root: SigningCA,
        validity: dt.timedelta,
        actor: Actor,
    ) -> x509.Certificate:
        """Sign the intermediate certificate of CA `name` (a successor keeps its subject)."""
        pub = as_issuer_public_key(public_key)
        check_public_key(pub)
        cfg, now = self.ctx.config, self.ctx.clock.now()
        subject = ca_subject(cfg.organization, lineage(name)[0], root=False)
        window = CAValidity.starting(
            now, validity, cfg.backdate, cap=root.certificate.not_valid_after_utc
        )
        draft = _ca_draft(name, subject, "intermediate-ca", now)
        reserved, cert = self.ctx.sign_recorded(
            draft,
            lambda s: build_intermediate(
                pub,
                subject,
                serial=s,
                validity=window,
                issuer=root,
                urls=cfg.urls.for_issuer(ROOT_NAME),
            ),
        )
        with self.ctx.store.transaction() as tx:
            self.ctx.complete(tx, reserved, cert)
            self.ctx.audit(
                tx, actor, "ca.sign-intermediate", name, {"serial": f"{reserved.serial:x}"}
            )
        return cert

    def create_intermediate(
        self,
        name: str,
        key_type: KeyType | None = None,
        validity: dt.timedelta | None = None,
        *,
        root_key_ref: str | None = None,
        actor: Actor = OPERATOR,
    ) -> CARecord:
        """Add an intermediate signed by the root, whose key must be reachable here.

        Raises:
            Conflict: name taken, or the root key is offline and no location was given.
        """
        name = self._free_name(name)
        root = self.ctx.signer(self.ctx.get_ca(ROOT_NAME), root_key_ref)
        key = generate_key(key_type or self.ctx.config.intermediate_key_type)
        return self._create_intermediate(
            name,
            key,
            root,
            self.ctx.config.intermediate_validity if validity is None else validity,
            actor,
        )

    def create_intermediate_csr(
        self, name: str, key_type: KeyType | None = None, actor: Actor = OPERATOR
    ) -> x509.CertificateSigningRequest:
        """Make an intermediate key here and a CSR for the offline root to sign.

        Raises:
            Conflict: name taken.
        """
        name = self._free_name(name)
        key = generate_key(key_type or self.ctx.config.intermediate_key_type)
        csr = build_intermediate_csr(
            key, ca_subject(self.ctx.config.organization, name, root=False)
        )
        key_ref = self.ctx.keys.save(name, key)
        with self.ctx.store.transaction() as tx:
            tx.cas.add(
                CARecord(
                    name,
                    CAKind.INTERMEDIATE,
                    CAStatus.PENDING,
                    ROOT_NAME,
                    None,
                    key_ref,
                    self.ctx.clock.now(),
                )
            )
            self.ctx.audit(tx, actor, "ca.create-intermediate-csr", name)
        self.ctx.forget_cas()
        return csr

    def sign_intermediate(
        self,
        csr_data: bytes,
        name: str | None = None,
        validity: dt.timedelta | None = None,
        *,
        root_key_ref: str | None = None,
        actor: Actor = OPERATOR,
    ) -> x509.Certificate:
        """Root side of offline signing: certify the key in an intermediate's CSR.

        Raises:
            InvalidCSR, WeakKey: bad CSR. Conflict: root key unavailable.
        """
        csr = load_csr(csr_data)
        if not csr_signature_valid(csr):
            raise InvalidCSR("CSR signature does not verify", field="csr")
        ca_name = name or _name_from_csr(csr)
        validate_ca_name(lineage(ca_name)[0])  # a rotation's successor: `<name>.<n>`
        root = self.ctx.signer(self.ctx.get_ca(ROOT_NAME), root_key_ref)
        return self.certify_key(
            ca_name,
            csr.public_key(),
            root,
            self.ctx.config.intermediate_validity if validity is None else validity,
            actor,
        )

    def import_intermediate(
        self,
        name: str,
        cert: x509.Certificate,
        key: CertificateIssuerPrivateKeyTypes | None = None,
        actor: Actor = OPERATOR,
    ) -> CARecord:
        """Install a signed intermediate: completes a pending CSR, or imports cert + key.

        Raises:
            InvalidInput: not a CA certificate, or the key does not match.
            IntegrityError: not issued by this root.
        """
        base, generation = lineage(name)
        validate_ca_name(base)
        check_ca_certificate(cert, expect_root=False)
        root = self.ctx.get_ca(ROOT_NAME)
        assert root.certificate is not None
        check_signed_by(cert, root.certificate)
        with self.ctx.store.transaction(readonly=True) as tx:
            existing = tx.cas.get(name)
        if existing is not None and existing.status is not CAStatus.PENDING:
            raise Conflict(f"CA {name!r} already exists")
        if key is None:
            if existing is None or existing.key_ref is None:
                raise InvalidInput(f"no pending CSR for {name!r}: give the CA key too", field="key")
            key = self.ctx.load_key(name, existing.key_ref)
        if not keys_match(cert, key):
            raise InvalidInput("the certificate does not match the CA key", field="certificate")
        key_ref = (
            existing.key_ref if existing and existing.key_ref else self.ctx.keys.save(name, key)
        )
        if generation > 1 and existing is None:
            raise InvalidInput(
                f"{name!r} is the name of a rotated CA's successor: start the rotation with "
                f"`pkiforge ca rotate {base} --csr-out FILE`",
                field="name",
            )
        record = self.active_intermediate(name, cert, key_ref)
        with self.ctx.store.transaction() as tx:
            (tx.cas.update if existing else tx.cas.add)(record)
            self._record_external(tx, name, cert, "intermediate-ca", ROOT_NAME)
            self.ctx.audit(
                tx, actor, "ca.import-intermediate", name, {"serial": f"{cert.serial_number:x}"}
            )
            if generation > 1:  # completes `ca rotate --csr-out`: the successor issues now
                retire_predecessors(self.ctx, tx, record, actor)
        self.ctx.forget_cas()
        return record

    def active_intermediate(self, name: str, cert: x509.Certificate, key_ref: str) -> CARecord:
        return CARecord(
            name,
            CAKind.INTERMEDIATE,
            CAStatus.ACTIVE,
            ROOT_NAME,
            cert,
            key_ref,
            self.ctx.clock.now(),
        )

    def import_root(
        self,
        cert: x509.Certificate,
        key: CertificateIssuerPrivateKeyTypes | None,
        actor: Actor = OPERATOR,
    ) -> CARecord:
        """Adopt an existing root CA (with its key, or certificate only for an offline root).

        Raises:
            Conflict: a root exists. InvalidInput: not a self-signed CA or key mismatch.
        """
        check_ca_certificate(cert, expect_root=True)
        if key is not None and not keys_match(cert, key):
            raise InvalidInput("the certificate does not match the key", field="key")
        with self.ctx.store.transaction(readonly=True) as tx:
            if tx.cas.get(ROOT_NAME) is not None:
                raise Conflict("a root CA already exists here")
        key_ref = self.ctx.keys.save(ROOT_NAME, key) if key is not None else None
        record = CARecord(
            ROOT_NAME, CAKind.ROOT, CAStatus.ACTIVE, None, cert, key_ref, self.ctx.clock.now()
        )
        with self.ctx.store.transaction() as tx:
            tx.cas.add(record)
            self._record_external(tx, ROOT_NAME, cert, "root-ca", ROOT_NAME)
            self.ctx.audit(
                tx,
                actor,
                "ca.import-root",
                ROOT_NAME,
                {"serial": f"{cert.serial_number:x}", "offline_key": key is None},
            )
        self.ctx.forget_cas()
        return record

    def _record_external(
        self, tx: Transaction, name: str, cert: x509.Certificate, profile: str, issuer: str
    ) -> None:
        """Make a CA certificate signed elsewhere known to the inventory."""
        if tx.certificates.get(cert.serial_number) is not None:
            return  # signed here (same store as the root)
        tx.certificates.add(
            CertificateRecord(
                serial=cert.serial_number,
                issuer=issuer,
                profile=profile,
                common_name=name,
                names=(),
                status=CertStatus.ACTIVE,
                created_at=self.ctx.clock.now(),
                not_before=cert.not_valid_before_utc,
                not_after=cert.not_valid_after_utc,
                fingerprint=fingerprint(cert),
                certificate=cert,
            )
        )

    def _free_name(self, name: str) -> str:
        name = validate_ca_name(name)
        with self.ctx.store.transaction(readonly=True) as tx:
            if tx.cas.get(name) is not None:
                raise Conflict(f"CA {name!r} already exists", field="name")
        return name


def _only_root(cas: list[CARecord]) -> CARecord | None:
    """The root, when it is the only CA (how an interrupted `initialize` leaves things)."""
    return cas[0] if len(cas) == 1 and cas[0].kind is CAKind.ROOT else None


def _ca_draft(
    name: str, subject: x509.Name, profile: str, now: dt.datetime, issuer: str = ROOT_NAME
) -> CertificateRecord:
    return CertificateRecord(
        serial=0,
        issuer=issuer,
        profile=profile,
        common_name=name,
        names=(),
        status=CertStatus.PENDING,
        created_at=now,
        service_id=None,
    )


def _name_from_csr(csr: x509.CertificateSigningRequest) -> str:
    cns = csr.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    if not cns:
        raise InvalidInput("CSR has no common name: give the CA name", field="name")
    words = str(cns[0].value).split()
    if len(words) >= 3 and words[-1] == "CA":
        return words[-2]
    raise InvalidInput("cannot tell the CA name from the CSR: give it", field="name")
