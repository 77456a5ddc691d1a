"""Issuance policy as a list of small rules applied in a fixed order (like step-ca SignOptions).

Each rule looks at a `Draft` and either changes it (a modifier) or raises (a check).
`DEFAULT_RULES` is what every leaf goes through, after the caller's own rules
(`ca/issue_rules.py`) have passed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

from pkiforge.ca.profiles import Profile
from pkiforge.clock import utc
from pkiforge.errors import InvalidName, PolicyViolation
from pkiforge.x509.keys import check_public_key
from pkiforge.x509.names import (
    SubjectName,
    dedupe,
    parse_san,
    service_from_spiffe,
    spiffe_id,
    validate_service_id,
)

MAX_NAMES = 100


@dataclass
class Draft:
    """A leaf certificate being shaped by the rules; `names` excludes nothing, CN included."""

    public_key: CertificatePublicKeyTypes
    common_name: str
    names: list[SubjectName]
    service_id: str
    profile: Profile
    trust_domain: str
    now: dt.datetime
    issuer_not_after: dt.datetime
    backdate: dt.timedelta
    validity: dt.timedelta | None = None
    not_before: dt.datetime = field(init=False)
    not_after: dt.datetime = field(init=False)


Rule = Callable[[Draft], None]


def check_key(draft: Draft) -> None:
    """RSA >= 2048, P-256/P-384, Ed25519."""
    check_public_key(draft.public_key)


def check_service_id(draft: Draft) -> None:
    """The service id must be a valid SPIFFE path segment."""
    draft.service_id = validate_service_id(draft.service_id)


def common_name_in_sans(draft: Draft) -> None:
    """The CN must be a DNS name or IP and is always among the SANs (RFC 6125 §6.4.4)."""
    if not draft.common_name:
        raise InvalidName("a common name is required", field="common_name")
    cn = parse_san(
        draft.common_name, allow_wildcard=draft.profile.allow_wildcards, field="common_name"
    )
    if cn.kind == "URI":
        raise InvalidName(
            f"common name {draft.common_name!r} must be a DNS name or an IP address",
            field="common_name",
        )
    draft.common_name = cn.value
    draft.names = dedupe([cn, *draft.names])


def service_spiffe_id(draft: Draft) -> None:
    """Add `spiffe://<trust-domain>/<service-id>`; refuse SPIFFE ids naming anything else."""
    own = spiffe_id(draft.trust_domain, draft.service_id)
    for name in draft.names:
        if name.kind == "URI" and name.value.startswith("spiffe://") and name != own:
            other = service_from_spiffe(name.value, draft.trust_domain)
            what = f"service {other!r}" if other else "another trust domain"
            raise PolicyViolation(
                f"SAN {name} names {what}; this certificate is for service "
                f"{draft.service_id!r} ({own.value})",
                field="san",
            )
    draft.names = dedupe([*draft.names, own])


def limit_names(draft: Draft) -> None:
    """At most MAX_NAMES SANs."""
    if len(draft.names) > MAX_NAMES:
        raise PolicyViolation(f"too many names: at most {MAX_NAMES} SANs", field="san")


def validity_window(draft: Draft) -> None:
    """Default/maximum validity by profile, notBefore backdated, notAfter within the issuer's.

    The validity runs from now; the backdate is added before it for clock skew, except that
    the whole window (notAfter - notBefore) never exceeds the profile maximum: a certificate
    asked for at the maximum ends one backdate earlier.
    """
    validity = draft.profile.default_validity if draft.validity is None else draft.validity
    if validity > draft.profile.max_validity:
        raise PolicyViolation(
            f"validity of {validity.days} days exceeds the {draft.profile.name!r} profile "
            f"maximum of {draft.profile.max_validity.days} days",
            field="validity",
        )
    if validity <= dt.timedelta(0):
        raise PolicyViolation("validity must be positive", field="validity")
    now = utc(draft.now).replace(microsecond=0)
    draft.not_before = now - draft.backdate
    # RFC 5280 §6.1.3: a certificate valid beyond its issuer is truncated, not refused
    draft.not_after = min(
        now + validity,
        draft.not_before + draft.profile.max_validity,
        utc(draft.issuer_not_after),
    )
    if draft.not_after <= now:
        raise PolicyViolation("the issuing CA has expired", field="issuer")


DEFAULT_RULES: tuple[Rule, ...] = (
    check_key,
    common_name_in_sans,  # names first: a bad CN is reported as such, not as a bad service id
    check_service_id,
    service_spiffe_id,
    limit_names,
    validity_window,
)
