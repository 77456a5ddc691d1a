"""Index keys for registered names, so that the ownership check reads only the patterns that
can match the names a request asks for, not every service's names.

Every certificate request checks that no other service has registered a name it asks for.
Reading all registered names for that made the request's cost grow with the size of the
registry (each request decoded every service's names and compared every pattern). Instead the
store keeps one row per registered pattern under `pattern_key(pattern)`, and a request looks
up `candidate_keys(name)` for each requested name: every registered pattern `p` that
`name_matches(p, name)` has `pattern_key(p)` among them. The patterns found are then checked
with `name_matches` as before, so the index can only narrow what is compared, never decide.

Registered names are normalised when registered (`DNS:` lower-case without a trailing dot,
`IP:` one address, `URI:`), and a DNS pattern may be a wildcard `*.a.b`, which covers one label.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from pkiforge.x509.names import SubjectName

_KINDS = ("DNS", "IP", "URI")


def pattern_key(pattern: str) -> str:
    """The index key of a registered name pattern (`DNS:*.a.b`, `IP:10.0.0.1`, `URI:...`)."""
    kind, sep, value = pattern.partition(":")
    if not sep or kind.upper() not in _KINDS:
        kind, value = _guess_kind(pattern), pattern
    kind = kind.upper()
    value = value.strip().lower()
    if kind == "DNS":
        return f"DNS:{value.rstrip('.')}"
    if kind == "IP":
        try:
            return f"IP:{ipaddress.ip_address(value)}"
        except ValueError:
            return f"IP:{value}"  # not one address: registration never stores such a name
    return f"URI:{value}"


def candidate_keys(name: SubjectName) -> list[str]:
    """The keys under which every registered pattern covering `name` is filed."""
    exact = pattern_key(str(name))  # the name registered as it is
    _, dot, parent = exact.partition(".")
    wildcard = f"DNS:*.{parent}"  # `*.a.b` covers one label under `a.b`
    if name.kind != "DNS" or not dot or not parent or wildcard == exact:
        return [exact]
    return [exact, wildcard]


def keys_for(names: Iterable[SubjectName]) -> list[str]:
    """`candidate_keys` of several names, each key once, in order."""
    return list(dict.fromkeys(key for name in names for key in candidate_keys(name)))


def _guess_kind(value: str) -> str:
    # an untyped pattern: registration always types names, so only hand-written rows get here
    try:
        ipaddress.ip_address(value.strip())
        return "IP"
    except ValueError:
        return "URI" if ":" in value else "DNS"
