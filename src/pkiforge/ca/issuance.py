"""The one way a leaf certificate is issued: `Issuance.issue(request, actor, rules)`.

In a fixed order: the token's profile, the profile (looked up once), the CSR or key, the
names and metadata (checked once), the caller's limits (names owned, profile, validity,
quota, key custody), the rate limit, the token spent; then the issuer, the profile's
`DEFAULT_RULES`, record-before-sign (`CAContext.sign_recorded`), audit. The CLI, the API and
renewals all come through here, each with the rules its authorize step built.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificatePublicKeyTypes,
)

from pkiforge.actor import Actor
from pkiforge.ca.ca_certs import ROOT_NAME
from pkiforge.ca.context import CAContext
from pkiforge.ca.crl import reason_name
from pkiforge.ca.enrollment import EnrollmentService
from pkiforge.ca.events import EventType
from pkiforge.ca.issue_request import IssueRequest
from pkiforge.ca.issue_rules import (
    IssuanceRules,
    capped_validity,
    check_names_owned,
    check_profile_allowed,
    check_quota,
    check_renewed_names,
    check_server_key,
    check_token_profile,
    check_validity,
    check_wildcards,
)
from pkiforge.ca.leaf import sign_leaf
from pkiforge.ca.metadata import check_metadata
from pkiforge.ca.models import CARecord, CAStatus, CertificateRecord, CertStatus, Revocation
from pkiforge.ca.notifications import certificate_data
from pkiforge.ca.policy import DEFAULT_RULES, Draft
from pkiforge.ca.ports import IssuanceEvents, RateLimiter, Transaction
from pkiforge.ca.profiles import DEFAULT_PROFILE, Profile, get_profile
from pkiforge.errors import Conflict, InvalidInput, PkiError, PolicyViolation
from pkiforge.x509.csr import check_csr
from pkiforge.x509.keys import generate_key
from pkiforge.x509.names import SubjectName, service_from_spiffe


@dataclass(frozen=True)
class Issued:
    """The recorded certificate, and its key when the CA made it (shown once, never stored)."""

    record: CertificateRecord
    key: CertificateIssuerPrivateKeyTypes | None = None


@dataclass(frozen=True)
class _Subject:
    """The request's names and key once checked against the profile."""

    common_name: str
    names: list[SubjectName]
    public_key: CertificatePublicKeyTypes | None  # None: made here after every check
    service_id: str | None


@dataclass(frozen=True)
class _Plan:
    """What passed every check before the issuer is chosen."""

    profile: Profile
    subject: _Subject
    service_id: str | None
    validity: dt.timedelta | None
    metadata: dict[str, Any]


class NoEvents:
    """IssuanceEvents that ignore everything."""

    def issued(self, record: CertificateRecord, *, renewed: bool) -> None:
        pass

    def revoked(self, record: CertificateRecord) -> None:
        pass

    def failed(self, issuer: str, profile: str) -> None:
        pass


@dataclass
class Issuance:
    """Issue leaf certificates under the rules of the actor asking."""

    ctx: CAContext
    enrollment: EnrollmentService
    limiter: RateLimiter | None = None  # counts issuance per service (the API's)
    events: IssuanceEvents = field(default_factory=NoEvents)

    def issue(self, request: IssueRequest, actor: Actor, rules: IssuanceRules) -> Issued:
        """Check, apply the rules, record the serial, sign, record the certificate, audit.

        With `rules.supersede`, the certificate `request.renews` is revoked (superseded) in
        the transaction that records this one, so the two are never active together. A
        token is spent only when the certificate is signed.

        Raises:
            PermissionDenied, RateLimited, AuthenticationFailed (token): refused caller.
            PolicyViolation, InvalidName, InvalidCSR, WeakKey, InvalidInput: refused request.
            NotFound, Conflict: unknown or unusable issuer. BadPassphrase: key locked.
        """
        name = request.profile or rules.token_profile or DEFAULT_PROFILE
        check_token_profile(rules, name)
        profile = get_profile(self.ctx.config.profiles, name)
        default = profile.default_validity
        if request.default_validity is not None:
            default = min(request.default_validity, profile.max_validity)
        validity = capped_validity(rules, request.validity, default)
        if validity is None and request.default_validity is not None:
            validity = default
        subject = self._subject(request, profile)
        metadata = check_metadata(request.metadata)
        check_names_owned(rules, subject.common_name, subject.names)
        check_profile_allowed(rules, profile.name)
        check_validity(rules, request.validity)
        check_quota(rules)
        check_server_key(rules, subject.public_key is None)
        plan = _Plan(profile, subject, rules.service_id or subject.service_id, validity, metadata)
        if self.limiter is not None and rules.service_id is not None:
            self.limiter.hit(rules.service_id)
        if rules.token is not None:
            self.enrollment.spend(rules.token, actor.address)
        try:
            issued = self._sign(request, actor, rules, plan)
        except PkiError:
            if rules.token is not None:
                self.enrollment.release(rules.token.token_id)
            self.events.failed(request.issuer or self.ctx.config.default_issuer, profile.name)
            raise
        if rules.token is not None:
            self.enrollment.bind(rules.token.token_id, issued.record.serial_hex)
        self.events.issued(issued.record, renewed=request.renews is not None)
        return issued

    def _subject(self, request: IssueRequest, profile: Profile) -> _Subject:
        wild = profile.allow_wildcards
        if request.csr is None:
            check_wildcards(request.names, wild)
            names = list(request.names)
            cn = request.common_name or next((n.value for n in names if n.kind != "URI"), None)
            if cn is None:
                raise InvalidInput(
                    "without a CSR, give common_name or a DNS/IP name", field="common_name"
                )
            if request.public_key is None and request.key_type is None:
                raise InvalidInput("send a CSR, or a key_type for a server-made key", field="csr")
            return _Subject(cn, names, request.public_key, request.service_id)
        if request.key_type is not None:
            raise InvalidInput("send either a CSR or a key_type, not both", field="key_type")
        checked = check_csr(request.csr, allow_wildcard=wild)
        check_wildcards(request.names, wild)
        if request.renews is not None:
            check_renewed_names(checked.names, request.names)
            names = list(request.names)
        else:
            names = [*checked.names, *request.names]
        cn = request.common_name or checked.common_name or _first_dns(names)
        if cn is None:
            raise InvalidInput("CSR has no common name and no DNS or IP SAN", field="csr")
        service_id = request.service_id
        if service_id is None:
            trust_domain = self.ctx.config.trust_domain
            service_id = next(
                (
                    s
                    for n in names
                    if n.kind == "URI" and (s := service_from_spiffe(n.value, trust_domain))
                ),
                None,
            )
        return _Subject(cn, names, checked.public_key, service_id)

    def _sign(
        self,
        request: IssueRequest,
        actor: Actor,
        rules: IssuanceRules,
        plan: _Plan,
    ) -> Issued:
        subject, profile, metadata = plan.subject, plan.profile, plan.metadata
        ca = self._issuer(request.issuer)
        assert ca.certificate is not None
        key = generate_key(request.key_type) if request.key_type is not None else None
        public_key = key.public_key() if key is not None else subject.public_key
        if public_key is None:
            raise InvalidInput("a public key (CSR) is required", field="csr")
        draft = Draft(
            public_key=public_key,
            common_name=subject.common_name,
            names=list(subject.names),
            # DNS is case-insensitive: `Web.Example` names service `web.example`
            service_id=plan.service_id or subject.common_name.strip().lower().rstrip("."),
            profile=profile,
            trust_domain=self.ctx.config.trust_domain,
            now=self.ctx.clock.now(),
            issuer_not_after=ca.certificate.not_valid_after_utc,
            backdate=self.ctx.config.backdate,
            validity=plan.validity,
        )
        for rule in DEFAULT_RULES:  # refuse bad requests before touching the CA key
            rule(draft)
        signer = self.ctx.signer(ca)
        server_key = key is not None
        reservation = CertificateRecord(
            serial=0,
            issuer=ca.name,
            profile=draft.profile.name,
            common_name=draft.common_name,
            names=tuple(str(n) for n in draft.names),
            status=CertStatus.PENDING,
            created_at=self.ctx.clock.now(),
            service_id=draft.service_id,
            server_generated_key=server_key,
            renewed_from=request.renews,
            metadata=metadata,
        )
        reserved, cert = self.ctx.sign_recorded(
            reservation,
            lambda s: sign_leaf(
                draft, serial=s, issuer=signer, urls=self.ctx.config.urls.for_issuer(ca.name)
            ),
        )
        renewed_from = request.renews
        with self.ctx.store.transaction() as tx:
            record = self.ctx.complete(tx, reserved, cert)
            # revoke before auditing: every revocation takes its issuer's row before the
            # audit chain's head, and taking them in another order could deadlock
            superseded = None
            if rules.supersede and renewed_from is not None:
                superseded = self._supersede(tx, renewed_from, actor)
            details: dict[str, Any] = {
                "issuer": ca.name,
                "profile": draft.profile.name,
                "service": draft.service_id,
                "names": list(record.names),
                "not_after": record.not_after,
                "server_generated_key": server_key,
            }
            if renewed_from is not None:
                details["renewed_from"] = f"{renewed_from:x}"
            if metadata:
                details["metadata"] = metadata
            action = "cert.renew" if renewed_from is not None else "cert.issue"
            self.ctx.audit(tx, actor, action, record.serial_hex, details)
            if renewed_from is not None:
                self.ctx.notify(
                    tx,
                    EventType.CERTIFICATE_RENEWED,
                    service_id=record.service_id,
                    data=certificate_data(
                        EventType.CERTIFICATE_RENEWED,
                        record,
                        self.ctx.clock.now(),
                        renewed_from=f"{renewed_from:x}",
                    ),
                )
            if superseded is not None:
                revoked = {
                    "reason": reason_name(x509.ReasonFlags.superseded),
                    "issuer": superseded.issuer,
                    "superseded_by": record.serial_hex,
                }
                self.ctx.audit(tx, actor, "cert.revoke", superseded.serial_hex, revoked)
        if superseded is not None:
            with self.ctx.store.transaction(readonly=True) as tx:
                now_revoked = tx.certificates.get(superseded.serial)
            if now_revoked is not None:
                self.events.revoked(now_revoked)
        return Issued(record, key)

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

    def _issuer(self, name: str | None) -> CARecord:
        ca = self.ctx.issuing_ca(name or self.ctx.config.default_issuer)
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


def _first_dns(names: Sequence[SubjectName]) -> str | None:
    return next((n.value for n in names if n.kind in ("DNS", "IP")), None)
