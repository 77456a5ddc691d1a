"""Certificates on a service's behalf: whitelist, names, quota and rate limit, then the
lifecycle use-cases. This is what the API calls; the CLI (an operator) calls the lifecycle
directly.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes

from pkiforge.ca.authorization import (
    Caller,
    Operation,
    capped_validity,
    check_issuance,
    check_names,
    expand,
    renewal_supersedes,
    require,
)
from pkiforge.ca.enrollment import EnrollmentService, TokenSecret
from pkiforge.ca.lifecycle import (
    CertificateService,
    IssueRequest,
    check_renewable,
    parse_names,
)
from pkiforge.ca.metadata import check_metadata
from pkiforge.ca.models import CertificateQuery, CertificateRecord, CertStatus
from pkiforge.ca.ports import IssuanceEvents, RateLimiter
from pkiforge.ca.profiles import get_profile
from pkiforge.ca.registry import RegistryService
from pkiforge.ca.revocation import RevocationService
from pkiforge.errors import InvalidInput, PermissionDenied, PkiError
from pkiforge.x509.keys import KeyType
from pkiforge.x509.names import SubjectName, parse_san, spiffe_id


@dataclass(frozen=True)
class CertificateOrder:
    """A service's request: a CSR, or names plus a key type for a server-made key."""

    csr: bytes | None = None
    service_id: str | None = None
    common_name: str | None = None
    names: Sequence[str] = ()
    profile: str = "service"
    issuer: str | None = None
    validity: dt.timedelta | None = None
    key_type: KeyType | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


class NoEvents:
    """IssuanceEvents that ignore everything."""

    def issued(self, record: CertificateRecord, *, renewed: bool) -> None:
        pass

    def revoked(self, record: CertificateRecord) -> None:
        pass

    def failed(self, issuer: str, profile: str) -> None:
        pass


@dataclass
class ServiceCertificates:
    """Issue, renew, revoke and read certificates for an authenticated caller."""

    certificates: CertificateService
    revocation: RevocationService
    registry: RegistryService
    enrollment: EnrollmentService
    limiter: RateLimiter
    events: IssuanceEvents = field(default_factory=NoEvents)

    def request(
        self, order: CertificateOrder, caller: Caller
    ) -> tuple[CertificateRecord, CertificateIssuerPrivateKeyTypes | None]:
        """Issue a certificate (and a key when no CSR is sent); a token is spent only on success.

        Raises:
            PermissionDenied, RateLimited, AuthenticationFailed (token), InvalidInput,
            StoreUnavailable, plus the lifecycle's errors.
        """
        target = order.service_id or caller.service_id
        policy = require(caller, Operation.REQUEST, target)
        if caller.token_id is not None:
            self._check_token_order(order, caller, target)
        ctx = self.certificates.ctx
        default = get_profile(ctx.config.profiles, order.profile).default_validity
        order = replace(order, validity=capped_validity(policy, order.validity, default))
        request = self._issue_request(order, target)
        if not caller.is_admin:
            names = [parse_san(request.common_name, allow_wildcard=True), *request.names]
            self._check_names(target, names, policy.allowed_names)
        check_issuance(
            policy,
            profile=order.profile,
            validity=order.validity,
            # counted only when the policy has a quota: it is a query on every request
            active_certificates=self._active(target) if policy.max_certificates is not None else 0,
            server_key=order.csr is None,
        )
        self.limiter.hit(target)
        token = TokenSecret(caller.token_id, caller.token_hash or "") if caller.token_id else None
        if token is not None:
            self.enrollment.spend(token, caller.address)
        try:
            if order.csr is None:
                assert order.key_type is not None
                record, key = self.certificates.issue_with_new_key(
                    request, order.key_type, caller.actor
                )
            else:
                record, key = self.certificates.issue(request, caller.actor), None
        except PkiError:
            if token is not None:
                self.enrollment.release(token.token_id)
            self.events.failed(order.issuer or ctx.config.default_issuer, order.profile)
            raise
        if token is not None:
            self.enrollment.bind(token.token_id, record.serial_hex)
        self.events.issued(record, renewed=False)
        return record, key

    def renew(
        self,
        serial: int,
        caller: Caller,
        *,
        csr: bytes | None = None,
        validity: dt.timedelta | None = None,
    ) -> CertificateRecord:
        """Issue a successor of the caller's own certificate.

        Renewal replaces: at the service's `max_certificates` the renewed certificate is
        revoked (superseded) as its successor is recorded, so the count of active
        certificates never exceeds the quota; below it, the old one stays valid until it
        expires.

        Raises:
            NotFound, PermissionDenied, RateLimited, Conflict, InvalidInput.
        """
        old = self.certificates.get(serial)
        target = old.service_id or ""
        policy = require(caller, Operation.RENEW, target)
        if not caller.is_admin:
            names = [parse_san(n, allow_wildcard=True) for n in old.names]
            self._check_names(target, names, policy.allowed_names)
        check_renewable(old)  # a revoked certificate is refused as such, not by the quota
        active = self._active(target) if policy.max_certificates is not None else 0
        supersede = renewal_supersedes(
            policy,
            active_certificates=active,
            renewed_counts=old.state(self.certificates.ctx.clock.now()) is CertStatus.ACTIVE,
        )
        check_issuance(
            policy,
            profile=old.profile,
            validity=validity,
            # the successor takes the place of a superseded certificate in the count
            active_certificates=active - 1 if supersede else active,
            server_key=False,
        )
        if validity is None and old.not_before is not None and old.not_after is not None:
            # the validity asked for runs from now; the backdate before it is not part of it
            backdate = self.certificates.ctx.config.backdate
            lifetime = old.not_after - old.not_before - backdate
            validity = capped_validity(policy, None, lifetime)
        self.limiter.hit(target)
        try:
            record = self.certificates.renew(
                serial, csr_data=csr, validity=validity, actor=caller.actor, supersede=supersede
            )
        except PkiError:
            self.events.failed(old.issuer, old.profile)
            raise
        self.events.issued(record, renewed=True)
        if supersede:
            superseded = self.certificates.get(serial)
            if superseded.status is CertStatus.REVOKED:
                self.events.revoked(superseded)
        return record

    def revoke(
        self,
        serial: int,
        caller: Caller,
        reason: x509.ReasonFlags,
        invalidity_date: dt.datetime | None = None,
    ) -> CertificateRecord:
        """Revoke the caller's own certificate (any, as admin).

        Raises:
            NotFound, PermissionDenied, Conflict, InvalidInput.
        """
        old = self.certificates.get(serial)
        require(caller, Operation.REVOKE, old.service_id or "")
        record = self.revocation.revoke(
            serial, reason, invalidity_date=invalidity_date, actor=caller.actor
        )
        self.events.revoked(record)
        return record

    def get(self, serial: int, caller: Caller) -> CertificateRecord:
        """One of the caller's certificates (any, as admin).

        Raises:
            NotFound, PermissionDenied.
        """
        record = self.certificates.get(serial)
        require(caller, Operation.DOWNLOAD, record.service_id or "")
        return record

    def search(
        self, query: CertificateQuery, caller: Caller
    ) -> tuple[list[CertificateRecord], int]:
        """The caller's certificates (anyone's, as admin) and the total matching.

        Raises:
            PermissionDenied: asking for another service's certificates.
        """
        require(caller, Operation.LIST, query.service_id or caller.service_id)
        if not caller.is_admin:
            query = replace(query, service_id=caller.service_id)
        return self.certificates.search(query), self.certificates.count(query)

    def _issue_request(self, order: CertificateOrder, target: str) -> IssueRequest:
        wild = get_profile(self.certificates.ctx.config.profiles, order.profile).allow_wildcards
        if order.csr is not None:
            if order.key_type is not None:
                raise InvalidInput("send either a CSR or a key_type, not both", field="key_type")
            request = self.certificates.request_from_csr(
                order.csr,
                common_name=order.common_name,
                extra_names=order.names,
                service_id=target,
                profile=order.profile,
                issuer=order.issuer,
                validity=order.validity,
            )
            return replace(request, metadata=check_metadata(order.metadata))
        names = parse_names(order.names, allow_wildcard=wild)
        cn = order.common_name or next((n.value for n in names if n.kind != "URI"), None)
        if cn is None:
            raise InvalidInput(
                "without a CSR, give common_name or a DNS/IP name", field="common_name"
            )
        if order.key_type is None:
            raise InvalidInput("send a CSR, or a key_type for a server-made key", field="csr")
        return IssueRequest(
            cn,
            names,
            target,
            order.profile,
            order.issuer,
            order.validity,
            metadata=check_metadata(order.metadata),
        )

    def _check_token_order(self, order: CertificateOrder, caller: Caller, target: str) -> None:
        if target != caller.service_id:
            raise PermissionDenied(
                f"this enrollment token is for service {caller.service_id!r}, not {target!r}",
                field="service_id",
                reason="token-service",
            )
        token = self.enrollment.check(TokenSecret(caller.token_id or "", caller.token_hash or ""))
        if order.profile != token.profile:
            raise PermissionDenied(
                f"this enrollment token is for profile {token.profile!r}",
                field="profile",
                reason="token-profile",
            )

    def _check_names(
        self, target: str, names: Sequence[SubjectName], allowed: Sequence[str]
    ) -> None:
        trust_domain = self.certificates.ctx.config.trust_domain
        registered, owners = self.registry.name_view(target, names)
        check_names(
            target,
            names,
            registered=registered,
            allowed=expand(allowed, target),
            owners=owners,
            own_spiffe=spiffe_id(trust_domain, target),
        )

    def _active(self, service_id: str) -> int:
        return self.certificates.count(
            CertificateQuery(service_id=service_id, status=CertStatus.ACTIVE)
        )
