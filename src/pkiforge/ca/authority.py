"""Hierarchy use-cases: initialise, add intermediates (online or via an offline root), import."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, replace

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificatePublicKeyTypes,
)

from pkiforge.ca.context import CAContext, fingerprint
from pkiforge.ca.hierarchy import (
    ROOT_NAME,
    CAValidity,
    build_intermediate,
    build_intermediate_csr,
    build_root,
    ca_subject,
    check_ca_certificate,
    check_signed_by,
    keys_match,
    validate_ca_name,
)
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

    def initialize(
        self, options: InitOptions, actor: Actor = OPERATOR, progress: Progress = _quiet
    ) -> list[CARecord]:
        """Create the root and the first intermediate. Refuses if any CA exists.

        Raises:
            Conflict: already initialised.
        """
        if self.all():
            raise Conflict("a CA is already initialised here; refusing to overwrite it")
        name = validate_ca_name(options.intermediate_name)
        cfg = self.ctx.config
        progress(f"generating root key ({options.root_key_type or cfg.root_key_type})")
        root_key = generate_key(options.root_key_type or cfg.root_key_type)
        progress("signing root certificate")
        root = self._create_root(root_key, options.root_key_location, actor)
        assert root.certificate is not None
        progress(
            f"generating {name} key ({options.intermediate_key_type or cfg.intermediate_key_type})"
        )
        key = generate_key(options.intermediate_key_type or cfg.intermediate_key_type)
        progress(f"signing {name} certificate")
        inter = self._create_intermediate(
            name, key, SigningCA(root.certificate, root_key), cfg.intermediate_validity, actor
        )
        return [root, inter]

    def _create_root(
        self, key: CertificateIssuerPrivateKeyTypes, location: str | None, actor: Actor
    ) -> CARecord:
        cfg, now = self.ctx.config, self.ctx.clock.now()
        subject = ca_subject(cfg.organization, ROOT_NAME, root=True)
        validity = CAValidity.starting(now, cfg.root_validity, cfg.backdate)
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
        cert = self._sign_intermediate_key(name, key.public_key(), root, validity, actor)
        record = self._active_intermediate(name, cert, self.ctx.keys.save(name, key))
        with self.ctx.store.transaction() as tx:
            tx.cas.add(record)
            self.ctx.audit(
                tx, actor, "ca.create-intermediate", name, {"serial": f"{cert.serial_number:x}"}
            )
        self.ctx.forget_cas()
        return record

    def _sign_intermediate_key(
        self,
        name: str,
        public_key: CertificatePublicKeyTypes,
        root: SigningCA,
        validity: dt.timedelta,
        actor: Actor,
    ) -> x509.Certificate:
        pub = as_issuer_public_key(public_key)
        check_public_key(pub)
        cfg, now = self.ctx.config, self.ctx.clock.now()
        subject = ca_subject(cfg.organization, name, root=False)
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
        ca_name = validate_ca_name(name or _name_from_csr(csr))
        root = self.ctx.signer(self.ctx.get_ca(ROOT_NAME), root_key_ref)
        return self._sign_intermediate_key(
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
        name = validate_ca_name(name)
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
            key = self.ctx.keys.load(existing.key_ref)
        if not keys_match(cert, key):
            raise InvalidInput("the certificate does not match the CA key", field="certificate")
        key_ref = (
            existing.key_ref if existing and existing.key_ref else self.ctx.keys.save(name, key)
        )
        record = self._active_intermediate(name, cert, key_ref)
        with self.ctx.store.transaction() as tx:
            (tx.cas.update if existing else tx.cas.add)(record)
            self._record_external(tx, name, cert, "intermediate-ca", ROOT_NAME)
            self.ctx.audit(
                tx, actor, "ca.import-intermediate", name, {"serial": f"{cert.serial_number:x}"}
            )
        self.ctx.forget_cas()
        return record

    def _active_intermediate(self, name: str, cert: x509.Certificate, key_ref: str) -> CARecord:
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
