"""Leaf certificate use-cases: issue (from a CSR or with a server-made key), renew, look up."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificatePublicKeyTypes,
)

from pkiforge.ca.context import CAContext
from pkiforge.ca.crl import reason_name
from pkiforge.ca.hierarchy import ROOT_NAME
from pkiforge.ca.issue import sign_leaf
from pkiforge.ca.metadata import check_metadata
from pkiforge.ca.models import (
    OPERATOR,
    Actor,
    CARecord,
    CAStatus,
    CertificateQuery,
    CertificateRecord,
    CertStatus,
    Revocation,
    format_serial,
    parse_serial,
)
from pkiforge.ca.policy import Draft, apply_rules
from pkiforge.ca.ports import Transaction
from pkiforge.ca.profiles import get_profile
from pkiforge.errors import Conflict, InvalidInput, NotFound, PolicyViolation
from pkiforge.x509.csr import check_csr, load_csr
from pkiforge.x509.keys import KeyType, generate_key
from pkiforge.x509.names import SubjectName, parse_san, service_from_spiffe

# shortest serial prefix taken for a whole serial: 32 bits, so that a typo rarely lands on
# another certificate of the inventory
MIN_SERIAL_PREFIX = 8


@dataclass(frozen=True)
class IssueRequest:
    """What to certify; None fields take the profile's or configuration's default."""

    common_name: str
    names: Sequence[SubjectName] = ()
    service_id: str | None = None
    profile: str = "service"
    issuer: str | None = None
    validity: dt.timedelta | None = None
    public_key: CertificatePublicKeyTypes | None = None  # None: `issue_with_new_key` makes one
    metadata: Mapping[str, Any] = field(default_factory=dict)  # stored with the certificate


def parse_names(values: Sequence[str], *, allow_wildcard: bool) -> list[SubjectName]:
    """Parse `DNS:x`, `IP:x`, `URI:x` strings.

    Raises:
        InvalidName, PolicyViolation: a malformed or disallowed name.
    """
    return [parse_san(v, allow_wildcard=allow_wildcard) for v in values]


class CertificateService:
    """Issue, renew and find leaf certificates."""

    def __init__(self, ctx: CAContext) -> None:
        self.ctx = ctx

    def request_from_csr(
        self,
        csr_data: bytes,
        *,
        common_name: str | None = None,
        extra_names: Sequence[str] = (),
        service_id: str | None = None,
        profile: str = "service",
        issuer: str | None = None,
        validity: dt.timedelta | None = None,
    ) -> IssueRequest:
        """Check a CSR and turn it into an IssueRequest (its CN and SANs are requested names).

        Raises:
            InvalidCSR, WeakKey, InvalidName, PolicyViolation, InvalidInput.
        """
        wild = get_profile(self.ctx.config.profiles, profile).allow_wildcards
        checked = check_csr(load_csr(csr_data), allow_wildcard=wild)
        names = [*checked.names, *parse_names(extra_names, allow_wildcard=wild)]
        cn = common_name or checked.common_name or _first_dns(names)
        if cn is None:
            raise InvalidInput("CSR has no common name and no DNS or IP SAN", field="csr")
        if service_id is None:
            service_id = next(
                (
                    s
                    for n in names
                    if n.kind == "URI"
                    and (s := service_from_spiffe(n.value, self.ctx.config.trust_domain))
                ),
                None,
            )
        return IssueRequest(cn, names, service_id, profile, issuer, validity, checked.public_key)

    def issue(
        self,
        request: IssueRequest,
        actor: Actor = OPERATOR,
        *,
        server_generated_key: bool = False,
        renewed_from: int | None = None,
        supersede: bool = False,
    ) -> CertificateRecord:
        """Apply policy, record the serial, sign, record the certificate, audit.

        With `supersede`, the certificate `renewed_from` is revoked (superseded) in the
        transaction that records this one, so the two are never active together.

        Raises:
            PolicyViolation, InvalidName, WeakKey, InvalidInput: refused request.
            NotFound, Conflict: unknown or unusable issuer. BadPassphrase: key locked.
        """
        ca = self._issuer(request.issuer)
        draft = self._draft(request, ca)  # refuse bad requests before touching the key
        metadata = check_metadata(request.metadata)
        signer = self.ctx.signer(ca)
        reservation = CertificateRecord(
            serial=0,
            issuer=ca.name,
            profile=draft.profile.name,
            common_name=draft.common_name,
            names=tuple(str(n) for n in draft.names),
            status=CertStatus.PENDING,
            created_at=self.ctx.clock.now(),
            service_id=draft.service_id,
            server_generated_key=server_generated_key,
            renewed_from=renewed_from,
            metadata=metadata,
        )
        reserved, cert = self.ctx.sign_recorded(
            reservation,
            lambda s: sign_leaf(
                draft,
                serial=s,
                issuer=signer,
                urls=self.ctx.config.urls.for_issuer(ca.name),
            ),
        )
        with self.ctx.store.transaction() as tx:
            record = self.ctx.complete(tx, reserved, cert)
            # revoke before auditing: every revocation takes its issuer's row before the
            # audit chain's head, and taking them in another order could deadlock
            superseded = None
            if supersede and renewed_from is not None:
                superseded = self._supersede(tx, renewed_from, actor)
            action = "cert.renew" if renewed_from is not None else "cert.issue"
            details: dict[str, Any] = {
                "issuer": ca.name,
                "profile": draft.profile.name,
                "service": draft.service_id,
                "names": list(record.names),
                "not_after": record.not_after,
                "server_generated_key": server_generated_key,
            }
            if renewed_from is not None:
                details["renewed_from"] = f"{renewed_from:x}"
            if metadata:
                details["metadata"] = metadata
            self.ctx.audit(tx, actor, action, record.serial_hex, details)
            if superseded is not None:
                revoked = {
                    "reason": reason_name(x509.ReasonFlags.superseded),
                    "issuer": superseded.issuer,
                    "superseded_by": record.serial_hex,
                }
                self.ctx.audit(tx, actor, "cert.revoke", superseded.serial_hex, revoked)
        return record

    def _supersede(self, tx: Transaction, serial: int, actor: Actor) -> CertificateRecord | None:
        """Revoke `serial` with reason superseded; None if it is no longer active."""
        old = tx.certificates.get(serial)
        if old is None or old.status is not CertStatus.ACTIVE:
            return None  # revoked meanwhile: it has left the count already
        revocation = Revocation(x509.ReasonFlags.superseded, self.ctx.clock.now(), None, str(actor))
        try:
            tx.certificates.revoke(serial, revocation)
        except Conflict:
            return None  # revoked by a transaction that committed after our read
        return old

    def issue_with_new_key(
        self, request_without_key: IssueRequest, key_type: KeyType, actor: Actor = OPERATOR
    ) -> tuple[CertificateRecord, CertificateIssuerPrivateKeyTypes]:
        """Make the key here (the admin flow) and issue for it; the key is not stored."""
        key = generate_key(key_type)
        request = replace(request_without_key, public_key=key.public_key())
        return self.issue(request, actor, server_generated_key=True), key

    def renew(
        self,
        serial: int,
        *,
        csr_data: bytes | None = None,
        validity: dt.timedelta | None = None,
        actor: Actor = OPERATOR,
        supersede: bool = False,
    ) -> CertificateRecord:
        """Issue a successor with the same names, profile, service and issuer.

        The same public key is reused unless a CSR brings a new one; a CSR may not ask for
        names the old certificate did not have. With `supersede` the old certificate is
        revoked (superseded) as the successor is recorded; otherwise it stays valid until it
        expires, so a service can switch over at leisure.

        Raises:
            NotFound: unknown serial. Conflict: revoked, never issued, or a CA certificate.
            PolicyViolation: the CSR asks for new names.
        """
        old = self.get(serial)
        check_renewable(old)
        assert old.certificate is not None
        public_key = old.certificate.public_key()
        if csr_data is not None:
            wild = get_profile(self.ctx.config.profiles, old.profile).allow_wildcards
            checked = check_csr(load_csr(csr_data), allow_wildcard=wild)
            extra = {str(n) for n in checked.names} - set(old.names)
            if extra:
                raise PolicyViolation(
                    f"renewal keeps the certificate's names; {sorted(extra)[0]} is new: "
                    "issue a new certificate instead",
                    field="csr",
                )
            public_key = checked.public_key
        profile = get_profile(self.ctx.config.profiles, old.profile)
        names = [parse_san(n, allow_wildcard=profile.allow_wildcards) for n in old.names]
        lifetime = old.certificate.not_valid_after_utc - old.certificate.not_valid_before_utc
        # same lifetime as before (less the backdate), within today's profile maximum
        keep = min(lifetime - self.ctx.config.backdate, profile.max_validity)
        request = IssueRequest(
            old.common_name,
            names,
            old.service_id,
            old.profile,
            old.issuer,
            keep if validity is None else validity,
            public_key,
            old.metadata,  # the successor carries what the requester attached to the original
        )
        return self.issue(request, actor, renewed_from=old.serial, supersede=supersede)

    def get(self, serial: int) -> CertificateRecord:
        """Raises NotFound."""
        with self.ctx.store.transaction(readonly=True) as tx:
            record = tx.certificates.get(serial)
        if record is None:
            raise NotFound(f"no certificate with serial {serial:x}", field="serial")
        return record

    def resolve_serial(self, text: str) -> int:
        """The serial of `text`: a whole serial, or a prefix of at least MIN_SERIAL_PREFIX hex
        digits that starts exactly one stored serial (as `cert list` shows them).

        Raises:
            InvalidInput: not hex, or a prefix that more than one serial starts with.
            NotFound: no certificate has it.
        """
        try:
            serial = parse_serial(text)
        except ValueError as exc:
            raise InvalidInput(str(exc), field="serial") from None
        with self.ctx.store.transaction(readonly=True) as tx:
            if tx.certificates.get(serial) is not None:
                return serial
            digits = format_serial(serial)  # normalised: lower case, no leading zeros
            if len(digits) < MIN_SERIAL_PREFIX:
                raise NotFound(
                    f"no certificate with serial {digits} (a prefix needs at least "
                    f"{MIN_SERIAL_PREFIX} hex digits)",
                    field="serial",
                )
            query = CertificateQuery(serial_prefix=digits, limit=2)
            found = tx.certificates.search(query)
            if len(found) > 1:
                count = tx.certificates.count(query)
                raise InvalidInput(
                    f"serial prefix {digits} matches {count} certificates; give more digits",
                    field="serial",
                )
        if not found:
            raise NotFound(
                f"no certificate with serial {digits} or starting with it", field="serial"
            )
        return found[0].serial

    def search(self, query: CertificateQuery) -> list[CertificateRecord]:
        with self.ctx.store.transaction(readonly=True) as tx:
            return tx.certificates.search(replace(query, now=query.now or self.ctx.clock.now()))

    def count(self, query: CertificateQuery) -> int:
        with self.ctx.store.transaction(readonly=True) as tx:
            return tx.certificates.count(replace(query, now=query.now or self.ctx.clock.now()))

    def _issuer(self, name: str | None) -> CARecord:
        ca = self.ctx.get_ca(name or self.ctx.config.default_issuer)
        if ca.name == ROOT_NAME:
            raise PolicyViolation(
                "the root CA only signs intermediates; choose an intermediate", field="issuer"
            )
        if ca.status is CAStatus.REVOKED:
            default = ca.name == self.ctx.config.default_issuer
            raise Conflict(
                f"CA {ca.name!r} is revoked and issues nothing"
                + (
                    "; it is the default issuer: choose another issuer or set "
                    "ca.default_issuer to an active CA"
                    if default
                    else "; choose another issuer"
                ),
                field="issuer",
            )
        if ca.status is not CAStatus.ACTIVE or ca.certificate is None:
            # a pending CA (CSR out to the offline root) has no certificate to issue under
            raise Conflict(f"CA {ca.name!r} is {ca.status.value}, not active", field="issuer")
        return ca

    def _draft(self, request: IssueRequest, ca: CARecord) -> Draft:
        assert ca.certificate is not None
        if request.public_key is None:
            raise InvalidInput("a public key (CSR) is required", field="csr")
        profile = get_profile(self.ctx.config.profiles, request.profile)
        return apply_rules(
            Draft(
                public_key=request.public_key,
                common_name=request.common_name,
                names=list(request.names),
                # DNS is case-insensitive: `Web.Example` names service `web.example`
                service_id=request.service_id or request.common_name.strip().lower().rstrip("."),
                profile=profile,
                trust_domain=self.ctx.config.trust_domain,
                now=self.ctx.clock.now(),
                issuer_not_after=ca.certificate.not_valid_after_utc,
                backdate=self.ctx.config.backdate,
                validity=request.validity,
            )
        )


def check_renewable(record: CertificateRecord) -> None:
    """Raises Conflict unless `record` is an issued leaf certificate that is not revoked."""
    if record.is_ca:
        raise Conflict(
            f"certificate {record.serial_hex} belongs to CA {record.common_name!r}: the leaf "
            "path does not renew CA certificates (see `pkiforge ca --help`)",
            field="serial",
        )
    if record.status is not CertStatus.ACTIVE or record.certificate is None:
        raise Conflict(
            f"certificate {record.serial_hex} is {record.status.value}; "
            "only an active certificate can be renewed",
            field="serial",
        )


def _first_dns(names: Sequence[SubjectName]) -> str | None:
    return next((n.value for n in names if n.kind in ("DNS", "IP")), None)


def certificate_names(cert: x509.Certificate) -> list[str]:
    """The SANs of a certificate as `KIND:value` strings."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    out = [f"DNS:{v}" for v in san.get_values_for_type(x509.DNSName)]
    out += [f"IP:{v}" for v in san.get_values_for_type(x509.IPAddress)]
    out += [f"URI:{v}" for v in san.get_values_for_type(x509.UniformResourceIdentifier)]
    return out
