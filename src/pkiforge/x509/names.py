"""Subject alternative names: parse `DNS:x`, `IP:x`, `URI:x`, validate them, SPIFFE ids.

DNS names follow RFC 1035/1123 preferred syntax in A-label (ASCII) form, as RFC 5280 §4.2.1.6
requires; a wildcard is only a whole leftmost label over at least two more labels.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from cryptography import x509

from pkiforge.errors import InvalidName, PolicyViolation

NameKind = Literal["DNS", "IP", "URI"]
_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_SERVICE_ID = re.compile(r"^[a-z0-9](?:[a-z0-9._-]{0,126}[a-z0-9])?$")
_TRUST_DOMAIN = re.compile(r"^[a-z0-9._-]{1,255}$")
_KIND_ALIASES = {"dns": "DNS", "ip": "IP", "uri": "URI", "ip address": "IP"}


@dataclass(frozen=True, order=True)
class SubjectName:
    """One SAN: its kind and its normalised value."""

    kind: NameKind
    value: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}"

    def to_general_name(self) -> x509.GeneralName:
        """The cryptography GeneralName for this SAN."""
        if self.kind == "DNS":
            return x509.DNSName(self.value)
        if self.kind == "IP":
            return x509.IPAddress(ipaddress.ip_address(self.value))
        return x509.UniformResourceIdentifier(self.value)


def validate_dns_name(name: str, *, allow_wildcard: bool, field: str = "san") -> str:
    """Return the lower-cased DNS name or raise.

    Raises:
        InvalidName: not a valid DNS name.
        PolicyViolation: a wildcard where the profile forbids it or in a wrong position.
    """
    value = name.strip().lower().rstrip(".")
    if not value:
        raise InvalidName("empty DNS name", field=field)
    if not value.isascii():
        raise InvalidName(
            f"DNS name {name!r} is not ASCII: use its IDNA A-label (xn--) form", field=field
        )
    if len(value) > 253:
        raise InvalidName(f"DNS name {name!r} is longer than 253 characters", field=field)
    labels = value.split(".")
    if "*" in value:
        _check_wildcard(name, labels, allow_wildcard, field)
        labels = labels[1:]
    for label in labels:
        if not _LABEL.match(label):
            raise InvalidName(
                f"DNS name {name!r} has an invalid label {label!r}: use letters, digits and "
                "hyphens, 1-63 characters, not starting or ending with a hyphen",
                field=field,
            )
    return value


def _check_wildcard(name: str, labels: list[str], allowed: bool, field: str) -> None:
    if labels[0] != "*" or any("*" in label for label in labels[1:]):
        raise PolicyViolation(
            f"wildcard in {name!r} must be the whole leftmost label, as in *.example.internal",
            field=field,
        )
    if len(labels) < 3:
        raise PolicyViolation(
            f"wildcard {name!r} is too broad: it needs at least two labels after '*'",
            field=field,
        )
    if not allowed:
        raise PolicyViolation(f"wildcard {name!r} is not allowed by this profile", field=field)


def validate_ip(text: str, field: str = "san") -> str:
    """Return the canonical text form of an IPv4/IPv6 address.

    Raises:
        InvalidName: not an IP address.
    """
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        raise InvalidName(f"{text!r} is not an IP address", field=field) from None


def validate_uri(text: str, field: str = "san") -> str:
    """Return an absolute URI with a scheme (RFC 5280 §4.2.1.6).

    Raises:
        InvalidName: not an absolute URI.
    """
    value = text.strip()
    parts = urlsplit(value)
    if not parts.scheme or not value.isascii() or any(c.isspace() for c in value):
        raise InvalidName(f"{text!r} is not an absolute ASCII URI", field=field)
    if parts.scheme in ("http", "https", "spiffe") and not parts.netloc:
        raise InvalidName(f"URI {text!r} has no authority", field=field)
    return value


def parse_san(text: str, *, allow_wildcard: bool, field: str = "san") -> SubjectName:
    """Parse `DNS:name`, `IP:addr` or `URI:uri`; a bare value is a DNS name or an IP.

    Raises:
        InvalidName: malformed value or unknown kind.
    """
    kind, sep, value = text.partition(":")
    if sep and kind.strip().lower() in _KIND_ALIASES:
        norm = _KIND_ALIASES[kind.strip().lower()]
    elif sep and kind.strip().lower() in ("http", "https", "spiffe"):
        norm, value = "URI", text
    elif (sep and ":" in value) or not sep:  # bare IPv6 or bare name
        norm, value = _guess_kind(text), text
    else:
        raise InvalidName(
            f"unknown SAN type {kind!r} in {text!r}: use DNS:, IP: or URI:", field=field
        )
    if norm == "DNS":
        return SubjectName(
            "DNS", validate_dns_name(value, allow_wildcard=allow_wildcard, field=field)
        )
    if norm == "IP":
        return SubjectName("IP", validate_ip(value, field))
    return SubjectName("URI", validate_uri(value, field))


def _guess_kind(value: str) -> str:
    try:
        ipaddress.ip_address(value.strip())
    except ValueError:
        return "DNS"
    return "IP"


def from_general_names(
    names: Iterable[x509.GeneralName], *, allow_wildcard: bool
) -> list[SubjectName]:
    """Convert a SAN extension's names, refusing kinds we do not issue.

    Raises:
        InvalidName: a name is malformed or of an unsupported kind (email, directory name ...).
    """
    out: list[SubjectName] = []
    for gn in names:
        if isinstance(gn, x509.DNSName):
            out.append(
                SubjectName("DNS", validate_dns_name(gn.value, allow_wildcard=allow_wildcard))
            )
        elif isinstance(gn, x509.IPAddress):
            if not isinstance(gn.value, ipaddress.IPv4Address | ipaddress.IPv6Address):
                raise InvalidName(f"IP network {gn.value} is not a host address", field="san")
            out.append(SubjectName("IP", str(gn.value)))
        elif isinstance(gn, x509.UniformResourceIdentifier):
            out.append(SubjectName("URI", validate_uri(gn.value)))
        else:
            raise InvalidName(
                f"SAN of type {type(gn).__name__} is not supported: use DNS, IP or URI",
                field="san",
            )
    return out


def validate_service_id(service_id: str, field: str = "service_id") -> str:
    """A service id: lower-case letters, digits, '.', '-', '_' (a SPIFFE path segment).

    Raises:
        InvalidName: malformed id.
    """
    value = service_id.strip()
    if not _SERVICE_ID.match(value):
        raise InvalidName(
            f"service id {service_id!r} is invalid: use 1-128 lower-case letters, digits, "
            "'.', '-' or '_', starting and ending with a letter or digit",
            field=field,
        )
    return value


def validate_trust_domain(domain: str) -> str:
    """A SPIFFE trust domain name.

    Raises:
        InvalidName: malformed trust domain.
    """
    value = domain.strip().lower()
    if not _TRUST_DOMAIN.match(value):
        raise InvalidName(f"trust domain {domain!r} is invalid", field="trust_domain")
    return value


def spiffe_id(trust_domain: str, service_id: str) -> SubjectName:
    """The URI SAN `spiffe://<trust-domain>/<service-id>` naming a service."""
    return SubjectName("URI", f"spiffe://{trust_domain}/{service_id}")


def service_from_spiffe(uri: str, trust_domain: str) -> str | None:
    """The service id in a SPIFFE URI of this trust domain, or None if it is not one."""
    parts = urlsplit(uri)
    if parts.scheme != "spiffe" or parts.netloc != trust_domain:
        return None
    path = parts.path.removeprefix("/")
    if not path or "/" in path or parts.query or parts.fragment:
        return None
    try:
        return validate_service_id(path)
    except InvalidName:
        return None


def dedupe(names: Sequence[SubjectName]) -> list[SubjectName]:
    """Keep the first of each name, in order."""
    seen: set[SubjectName] = set()
    out = []
    for name in names:
        if name not in seen:
            seen.add(name)
            out.append(name)
    return out
