"""Authorize steps: for each kind of actor, the `IssuanceRules` it issues under.

An operator (the CLI) and an admin service (the API) get the same rules: no limits beyond the
profile's. A registered service over mTLS gets its whitelist entry's limits, the names it
owns and its quota; an enrolling service is a registered one whose token also fixes the
profile and is spent on success.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import replace

from pkiforge.ca.authorization import (
    Caller,
    Operation,
    ServicePolicy,
    expand,
    renewal_supersedes,
    require,
)
from pkiforge.ca.enrollment import TokenSecret
from pkiforge.ca.issue_request import IssueRequest
from pkiforge.ca.issue_rules import IssuanceRules, NameGrant, NameLookup
from pkiforge.ca.models import CertificateRecord, CertStatus
from pkiforge.errors import PermissionDenied
from pkiforge.x509.names import spiffe_id


def operator_rules(request: IssueRequest, *, supersede: bool = False) -> IssuanceRules:
    """An operator's rules: the certificate is for the service the request names."""
    return IssuanceRules(service_id=request.service_id, supersede=supersede)


def service_rules(
    caller: Caller,
    request: IssueRequest,
    *,
    registry: NameLookup,
    count_active: Callable[[str], int],
    trust_domain: str,
) -> IssuanceRules:
    """The rules of a service asking for a certificate (for itself; for anyone, as admin).

    Raises:
        PermissionDenied: not whitelisted, not allowed to request, another service's
            certificate, or a token used for another service.
    """
    target = request.service_id or caller.service_id
    policy = require(caller, Operation.REQUEST, target)
    token = None
    if caller.token_id is not None:
        if target != caller.service_id:
            raise PermissionDenied(
                f"this enrollment token is for service {caller.service_id!r}, not {target!r}",
                field="service_id",
                reason="token-service",
            )
        token = TokenSecret(caller.token_id, caller.token_hash or "")
    if policy.is_admin:  # a token never carries admin rights (api/callers.py)
        return IssuanceRules(service_id=target)
    return _limits(
        policy,
        target,
        registry=registry,
        trust_domain=trust_domain,
        # counted only when the policy has a quota: it is a query on every request
        active=count_active(target) if policy.max_certificates is not None else 0,
        token=token,
        token_profile=caller.token_profile,
    )


def renewal_rules(
    caller: Caller,
    old: CertificateRecord,
    *,
    registry: NameLookup,
    count_active: Callable[[str], int],
    trust_domain: str,
    now: dt.datetime,
) -> IssuanceRules:
    """The rules of a service renewing one of its certificates (any, as admin).

    Renewal replaces: at the service's `max_certificates` the renewed certificate is revoked
    (superseded) as its successor is recorded, so the count never exceeds the quota; below
    it, the old one stays valid until it expires.

    Raises:
        PermissionDenied: not whitelisted, not allowed to renew, another service's certificate.
    """
    target = old.service_id or ""
    policy = require(caller, Operation.RENEW, target)
    if policy.is_admin:
        return IssuanceRules(service_id=target)
    active = count_active(target) if policy.max_certificates is not None else 0
    supersede = renewal_supersedes(
        policy,
        active_certificates=active,
        renewed_counts=old.state(now) is CertStatus.ACTIVE,
    )
    rules = _limits(
        policy,
        target,
        registry=registry,
        trust_domain=trust_domain,
        # the successor takes the place of a superseded certificate in the count
        active=active - 1 if supersede else active,
    )
    return replace(rules, supersede=supersede)


def _limits(
    policy: ServicePolicy,
    target: str,
    *,
    registry: NameLookup,
    trust_domain: str,
    active: int,
    token: TokenSecret | None = None,
    token_profile: str | None = None,
) -> IssuanceRules:
    return IssuanceRules(
        service_id=target,
        token=token,
        token_profile=token_profile,
        names=NameGrant(
            target,
            tuple(expand(policy.allowed_names, target)),
            spiffe_id(trust_domain, target),
            registry,
        ),
        profiles=policy.profiles,
        max_validity=policy.max_validity,
        max_certificates=policy.max_certificates,
        active_certificates=active,
        server_key=policy.server_generated_keys,
    )
