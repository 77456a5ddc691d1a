"""What this caller may have issued: the rules authentication produced for the caller, and the
small rule functions that apply them.

An edge (CLI, API) turns its input into an `IssueRequest` once (`ca/issue_request.py`); an
authorize step
(`ca/authorize.py`) turns the actor into `IssuanceRules`; `Issuance.issue` (`ca/issuance.py`)
applies the rules below in a fixed order, then the profile's `DEFAULT_RULES` (`ca/policy.py`).
As step-ca's provisioners emit sign options, the rules are data: an operator's are empty.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from pkiforge.ca.authorization import check_names
from pkiforge.ca.enrollment import TokenSecret
from pkiforge.errors import PermissionDenied, PolicyViolation
from pkiforge.x509.names import SubjectName, parse_san


class NameLookup(Protocol):
    """The registry's view of who holds which names (`RegistryService.name_view`)."""

    def name_view(
        self, service_id: str, names: Sequence[SubjectName]
    ) -> tuple[tuple[str, ...], dict[str, str]]: ...


@dataclass(frozen=True)
class NameGrant:
    """The names a service may hold: registered to it, whitelisted for it, or its SPIFFE id."""

    service_id: str
    allowed: tuple[str, ...]  # whitelist patterns, `{service_id}` already replaced
    own_spiffe: SubjectName
    registry: NameLookup = field(compare=False)


@dataclass(frozen=True)
class IssuanceRules:
    """What this caller may have issued; the empty value is an operator's (or an admin's).

    Built by an authorize step for each kind of actor (`ca/authorize.py`), applied by
    `Issuance.issue` in the order of the rule functions below.
    """

    service_id: str | None = None  # the service the certificate is for; None: from the request
    token: TokenSecret | None = None  # spent when the certificate is issued
    token_profile: str | None = None  # the only profile an enrollment token allows
    names: NameGrant | None = None  # None: any name
    profiles: tuple[str, ...] | None = None  # None: any profile
    max_validity: dt.timedelta | None = None  # caps the default, bounds an explicit validity
    max_certificates: int | None = None
    active_certificates: int = 0  # counted when there is a quota
    server_key: bool = True  # may the CA make the key
    supersede: bool = False  # renewal: revoke the renewed certificate as its successor is recorded


def check_token_profile(rules: IssuanceRules, profile: str) -> None:
    """An enrollment token buys a certificate of its own profile only.

    Raises:
        PermissionDenied: another profile.
    """
    if rules.token_profile is not None and profile != rules.token_profile:
        raise PermissionDenied(
            f"this enrollment token is for profile {rules.token_profile!r}",
            field="profile",
            reason="token-profile",
        )


def capped_validity(
    rules: IssuanceRules, requested: dt.timedelta | None, default: dt.timedelta
) -> dt.timedelta | None:
    """The validity to ask for: a service's `max_validity` caps the default (as a Vault role's
    max_ttl caps its ttl); an explicit request is checked (`check_validity`), not capped.
    None: the default."""
    if requested is not None:
        return requested
    if rules.max_validity is None:
        return None
    return min(default, rules.max_validity)


def check_names_owned(rules: IssuanceRules, common_name: str, names: Sequence[SubjectName]) -> None:
    """Every requested name, the CN included, must be the service's own.

    Raises:
        PermissionDenied: naming the first refused name. InvalidName: a malformed CN.
    """
    grant = rules.names
    if grant is None:
        return
    wanted = [parse_san(common_name, allow_wildcard=True), *names]
    registered, owners = grant.registry.name_view(grant.service_id, wanted)
    check_names(
        grant.service_id,
        wanted,
        registered=registered,
        allowed=grant.allowed,
        owners=owners,
        own_spiffe=grant.own_spiffe,
    )


def check_profile_allowed(rules: IssuanceRules, profile: str) -> None:
    """Raises PermissionDenied: a profile the service may not use."""
    if rules.profiles is not None and profile not in rules.profiles:
        raise PermissionDenied(
            f"profile {profile!r} is not allowed; use one of {', '.join(rules.profiles)}",
            field="profile",
            reason="profile",
        )


def check_validity(rules: IssuanceRules, validity: dt.timedelta | None) -> None:
    """Raises PermissionDenied: an explicit validity beyond the service's maximum."""
    if validity is not None and rules.max_validity is not None and validity > rules.max_validity:
        raise PermissionDenied(
            f"validity of {validity.days} days exceeds this service's maximum of "
            f"{rules.max_validity.days} days",
            field="validity_days",
            reason="validity",
        )


def check_quota(rules: IssuanceRules) -> None:
    """Raises PermissionDenied: the service holds `max_certificates` active certificates."""
    if rules.max_certificates is not None and rules.active_certificates >= rules.max_certificates:
        raise PermissionDenied(
            f"the service already holds {rules.active_certificates} active certificates "
            f"(max_certificates {rules.max_certificates}); revoke one first",
            reason="quota",
        )


def check_server_key(rules: IssuanceRules, server_key: bool) -> None:
    """Raises PermissionDenied: a server-made key where the service must send a CSR."""
    if server_key and not rules.server_key:
        raise PermissionDenied(
            "server-made keys are not allowed for this service; send a CSR",
            field="key_type",
            reason="server-key",
        )


def check_wildcards(names: Sequence[SubjectName], allowed: bool) -> None:
    """Raises PolicyViolation: a wildcard name where the profile allows none."""
    if allowed:
        return
    for name in names:
        if name.kind == "DNS" and name.value.startswith("*."):
            raise PolicyViolation(
                f"wildcard {name.value!r} is not allowed by this profile", field="san"
            )


def check_renewed_names(requested: Sequence[SubjectName], kept: Sequence[SubjectName]) -> None:
    """A renewal's CSR may not ask for names the renewed certificate did not have.

    Raises:
        PolicyViolation: naming the first new name.
    """
    extra = {str(n) for n in requested} - {str(n) for n in kept}
    if extra:
        raise PolicyViolation(
            f"renewal keeps the certificate's names; {sorted(extra)[0]} is new: "
            "issue a new certificate instead",
            field="csr",
        )
