"""Who may do what: the service whitelist as plain data and small composable checks.

The whitelist (origin documents: `service_whitelist.yaml`) gives each service id, or each glob
pattern such as `test-*`, its allowed operations, a quota of active certificates, the names it
may hold, a maximum validity and the profiles it may use. A service with the `admin` operation
may act for any service. Parsing lives in `pkiforge.whitelist`; this module never reads files.

Fail closed: a service that no entry names has no policy, and every check refuses it.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from pkiforge.ca.models import Actor
from pkiforge.errors import PermissionDenied
from pkiforge.x509.names import SubjectName


class Operation(StrEnum):
    """What a caller asks to do (`allowed_operations` in the whitelist)."""

    REQUEST = "request"
    RENEW = "renew"
    REVOKE = "revoke"
    DOWNLOAD = "download"  # read own certificates
    REGISTER = "register"
    UPDATE = "update"
    DISCOVER = "discover"
    LIST = "list"
    ADMIN = "admin"  # act for any service
    KEYS = "keys"  # manage the request-signing key registry, without admin's other rights


@dataclass(frozen=True)
class ServicePolicy:
    """What one service (or every service matching a pattern) may do."""

    operations: frozenset[Operation]
    max_certificates: int | None = None
    allowed_names: tuple[str, ...] = ()  # patterns; `{service_id}` is replaced
    max_validity: dt.timedelta | None = None
    profiles: tuple[str, ...] | None = None  # None: any profile
    server_generated_keys: bool = False

    @property
    def is_admin(self) -> bool:
        return Operation.ADMIN in self.operations


@dataclass(frozen=True)
class Whitelist:
    """Exact service ids first, then patterns in file order; no match means no rights."""

    services: Mapping[str, ServicePolicy] = field(default_factory=dict)
    patterns: Sequence[tuple[str, ServicePolicy]] = ()

    def policy_for(self, service_id: str) -> ServicePolicy | None:
        exact = self.services.get(service_id)
        if exact is not None:
            return exact
        for pattern, policy in self.patterns:
            if fnmatch.fnmatchcase(service_id, pattern):
                return policy
        return None


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: a service by its certificate, or an enrollment token."""

    service_id: str
    policy: ServicePolicy | None
    address: str | None = None
    token_id: str | None = None  # set when the caller presented an enrollment token
    token_hash: str | None = None
    token_profile: str | None = None  # the profile the token was minted for

    @property
    def is_admin(self) -> bool:
        return self.policy is not None and self.policy.is_admin

    @property
    def actor(self) -> Actor:
        if self.token_id is not None:
            return Actor("token", self.token_id, self.address)
        return Actor("service", self.service_id, self.address)


def require_listed(caller: Caller) -> ServicePolicy:
    """The caller's policy; any whitelisted service may read its own records.

    Raises:
        PermissionDenied: not in the whitelist.
    """
    if caller.policy is None:
        raise PermissionDenied(
            f"service {caller.service_id!r} is not in the service whitelist", reason="whitelist"
        )
    return caller.policy


def require_admin(caller: Caller, action: str) -> ServicePolicy:
    """The caller's policy, if it has the `admin` operation (hierarchy changes need it).

    Raises:
        PermissionDenied: not whitelisted, or not an admin.
    """
    policy = require_listed(caller)
    if not policy.is_admin:
        raise PermissionDenied(
            f"service {caller.service_id!r} may not {action}: it needs the admin operation",
            reason="operation",
        )
    return policy


def require_self_or_admin(caller: Caller, service_id: str, action: str) -> ServicePolicy:
    """The caller's policy, if it is the service `service_id` itself (by its certificate, not
    an enrollment token) or an admin.

    Raises:
        PermissionDenied: not whitelisted, a token, or another service that is not an admin.
    """
    policy = require_listed(caller)
    if policy.is_admin:
        return policy
    if caller.token_id is not None or caller.service_id != service_id:
        raise PermissionDenied(
            f"service {caller.service_id!r} may not {action} of service {service_id!r}: "
            "only the service itself or an admin may",
            field="service_id",
            reason="not-owner",
        )
    return policy


def require(caller: Caller, operation: Operation, target: str | None = None) -> ServicePolicy:
    """The caller's policy, if it allows `operation` on `target`'s behalf (default: itself).

    Raises:
        PermissionDenied: not whitelisted, operation not allowed, or another service's object.
    """
    policy = require_listed(caller)
    if policy.is_admin:
        return policy
    if operation not in policy.operations:
        raise PermissionDenied(
            f"service {caller.service_id!r} may not {operation.value}", reason="operation"
        )
    if target is not None and target != caller.service_id:
        raise PermissionDenied(
            f"service {caller.service_id!r} may not {operation.value} for service {target!r}",
            field="service_id",
            reason="not-owner",
        )
    return policy


def name_matches(pattern: str, name: SubjectName) -> bool:
    """Does a registered or whitelisted name pattern cover `name`?

    `*.a.b` covers one label under `a.b` (and the wildcard name itself); an IP pattern may be
    a CIDR block; `URI:` patterns match exactly.
    """
    kind, sep, value = pattern.partition(":")
    if sep and kind.upper() in ("DNS", "IP", "URI"):
        pattern = value
        if kind.upper() != name.kind:
            return False
    pattern = pattern.strip().lower().rstrip(".")
    if name.kind == "IP":
        try:
            return ipaddress.ip_address(name.value) in ipaddress.ip_network(pattern, strict=False)
        except ValueError:
            return False
    if name.kind == "URI":
        return pattern == name.value.lower()
    if pattern == name.value:
        return True
    if pattern.startswith("*."):
        suffix = pattern[1:]
        head = name.value.removesuffix(suffix)
        return name.value.endswith(suffix) and bool(head) and "." not in head
    return False


def expand(patterns: Sequence[str], service_id: str) -> list[str]:
    """Whitelist name patterns with `{service_id}` replaced."""
    return [p.replace("{service_id}", service_id) for p in patterns]


def check_names(
    service_id: str,
    names: Sequence[SubjectName],
    *,
    registered: Sequence[str],
    allowed: Sequence[str],
    owners: Mapping[str, str],
    own_spiffe: SubjectName,
) -> None:
    """Every requested name must be the service's own: registered to it or whitelisted for it,
    and not registered to another service.

    `owners` maps patterns registered by other services to their service ids.

    Raises:
        PermissionDenied: naming the first refused name.
    """
    for name in names:
        if name == own_spiffe:
            continue
        other = next((s for p, s in owners.items() if name_matches(p, name)), None)
        if other is not None and other != service_id:
            raise PermissionDenied(
                f"name {name} is registered to service {other!r}, not {service_id!r}",
                field="names",
                reason="name-owned",
                name=str(name),
            )
        if not any(name_matches(p, name) for p in [*registered, *allowed]):
            raise PermissionDenied(
                f"name {name} is not registered to service {service_id!r} "
                "nor allowed for it by the whitelist",
                field="names",
                reason="name-not-allowed",
                name=str(name),
            )


def renewal_supersedes(
    policy: ServicePolicy, *, active_certificates: int, renewed_counts: bool
) -> bool:
    """Must a renewal revoke the certificate it renews (reason superseded) to keep a
    non-admin service within `max_certificates`?

    Yes when the service is at (or over) its quota and the renewed certificate is among the
    active ones counted: the successor then takes its place instead of adding to the count.
    Below the quota the old certificate stays valid until it expires, as with step-ca and
    Vault, so a service can deploy its successor at leisure.
    """
    return (
        not policy.is_admin
        and policy.max_certificates is not None
        and renewed_counts
        and active_certificates >= policy.max_certificates
    )
