"""The whitelist policy in the core: table-driven, no HTTP."""

from __future__ import annotations

import datetime as dt

import pytest

from pkiforge.ca.authorization import (
    Caller,
    Operation,
    ServicePolicy,
    Whitelist,
    check_names,
    name_matches,
    renewal_supersedes,
    require,
)
from pkiforge.errors import PermissionDenied
from pkiforge.whitelist import parse_whitelist
from pkiforge.x509.names import SubjectName, spiffe_id

from .helpers import WHITELIST

DAY = dt.timedelta(days=1)
ALL = frozenset(Operation) - {Operation.ADMIN}


@pytest.mark.parametrize(
    ("pattern", "name", "expected"),
    [
        ("billing.internal", SubjectName("DNS", "billing.internal"), True),
        ("DNS:billing.internal", SubjectName("DNS", "billing.internal"), True),
        ("Billing.Internal.", SubjectName("DNS", "billing.internal"), True),
        ("*.billing.internal", SubjectName("DNS", "api.billing.internal"), True),
        ("*.billing.internal", SubjectName("DNS", "*.billing.internal"), True),
        ("*.billing.internal", SubjectName("DNS", "a.b.billing.internal"), False),
        ("*.billing.internal", SubjectName("DNS", "billing.internal"), False),
        ("*.billing.internal", SubjectName("DNS", "xbilling.internal"), False),
        ("billing.internal", SubjectName("DNS", "evilbilling.internal"), False),
        ("IP:10.1.0.0/16", SubjectName("IP", "10.1.2.3"), True),
        ("10.1.0.0/16", SubjectName("IP", "10.2.0.1"), False),
        ("IP:10.1.2.3", SubjectName("DNS", "10.1.2.3"), False),
        ("DNS:billing.internal", SubjectName("IP", "10.0.0.1"), False),
        ("URI:https://b.internal/x", SubjectName("URI", "https://b.internal/x"), True),
    ],
    ids=lambda v: str(v),
)
def test_name_patterns(pattern: str, name: SubjectName, expected: bool) -> None:
    assert name_matches(pattern, name) is expected


def _caller(service: str, policy: ServicePolicy | None) -> Caller:
    return Caller(service, policy)


@pytest.mark.parametrize(
    ("caller", "operation", "target", "reason"),
    [
        (_caller("x", None), Operation.REQUEST, None, "whitelist"),
        (
            _caller("x", ServicePolicy(frozenset({Operation.RENEW}))),
            Operation.REQUEST,
            None,
            "operation",
        ),
        (_caller("x", ServicePolicy(ALL)), Operation.REVOKE, "y", "not-owner"),
        (_caller("x", ServicePolicy(ALL)), Operation.REVOKE, "x", None),
        (_caller("x", ServicePolicy(frozenset({Operation.ADMIN}))), Operation.REVOKE, "y", None),
    ],
    ids=["unlisted", "operation", "other-service", "own", "admin"],
)
def test_require(
    caller: Caller, operation: Operation, target: str | None, reason: str | None
) -> None:
    if reason is None:
        assert require(caller, operation, target) is caller.policy
        return
    with pytest.raises(PermissionDenied) as info:
        require(caller, operation, target)
    assert info.value.data["reason"] == reason


OWN = spiffe_id("t.internal", "billing")


@pytest.mark.parametrize(
    ("names", "refused"),
    [
        (["billing.internal"], None),
        (["api.billing.internal"], None),  # whitelisted pattern
        (["orders.internal"], "DNS:orders.internal"),  # another service's
        (["billing.internal", "x.orders.internal"], "DNS:x.orders.internal"),
        (["nobody.internal"], "DNS:nobody.internal"),
        ([], None),
    ],
    ids=["registered", "whitelisted", "owned", "owned-pattern", "unknown", "spiffe-only"],
)
def test_check_names(names: list[str], refused: str | None) -> None:
    requested = [OWN, *(SubjectName("DNS", n) for n in names)]
    kwargs = {
        "registered": ["DNS:billing.internal"],
        "allowed": ["*.billing.internal"],
        "owners": {"DNS:orders.internal": "orders", "DNS:*.orders.internal": "orders"},
        "own_spiffe": OWN,
    }
    if refused is None:
        check_names("billing", requested, **kwargs)  # type: ignore[arg-type]
        return
    with pytest.raises(PermissionDenied, match=refused.replace("*", r"\*")) as info:
        check_names("billing", requested, **kwargs)  # type: ignore[arg-type]
    assert info.value.data["name"] == refused


LIMITED = ServicePolicy(ALL, max_certificates=2, max_validity=30 * DAY, profiles=("service",))


@pytest.mark.parametrize(
    ("policy", "active", "counts", "supersedes"),
    [
        (LIMITED, 1, True, False),
        (LIMITED, 2, True, True),
        (LIMITED, 3, True, True),
        (LIMITED, 2, False, False),
        (ServicePolicy(ALL), 50, True, False),
        (ServicePolicy(frozenset({Operation.ADMIN}), max_certificates=1), 5, True, False),
    ],
    ids=["below", "at-quota", "over-quota", "renewed-expired", "no-quota", "admin"],
)
def test_renewal_supersedes_at_the_quota(
    policy: ServicePolicy, active: int, counts: bool, supersedes: bool
) -> None:
    assert (
        renewal_supersedes(policy, active_certificates=active, renewed_counts=counts) is supersedes
    )


def test_whitelist_exact_ids_win_over_patterns_and_unlisted_get_nothing() -> None:
    wl = parse_whitelist(WHITELIST)
    assert wl.policy_for("billing") is not None
    test_policy = wl.policy_for("test-a")
    assert test_policy is not None and test_policy.max_certificates == 1
    assert wl.policy_for("stranger") is None
    assert Whitelist().policy_for("billing") is None
    ops = wl.policy_for("ops")
    assert ops is not None and ops.is_admin


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"services": [{"service_id": "a"}]}, "allowed_operations"),
        ({"services": [{"service_id": "a", "allowed_operations": ["fly"]}]}, "allowed_operations"),
        ({"services": [{"service_id": "a", "allowed_operations": [], "colour": 1}]}, "colour"),
        ({"servces": []}, "servces"),
        (
            {"services": [{"service_id": "a", "allowed_operations": [], "max_validity": "x"}]},
            "max_validity",
        ),
        (
            {"services": [{"service_id": "a", "allowed_operations": []}] * 2},
            "listed twice",
        ),
        ([1, 2], "services"),
    ],
    ids=["no-ops", "bad-op", "unknown-key", "typo-section", "bad-duration", "duplicate", "list"],
)
def test_malformed_whitelist_is_refused_with_its_location(data: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_whitelist(data, "wl.yaml")


def test_the_first_covering_owner_decides_so_an_exact_claim_beats_a_wildcard() -> None:
    # the store lists exact names before wildcards (owners_of): billing's own exact name wins
    # over orders' wildcard, and a sibling name under the wildcard stays orders'
    owners = {"DNS:api.orders.internal": "billing", "DNS:*.orders.internal": "orders"}
    kwargs = {"registered": ["DNS:api.orders.internal"], "allowed": [], "own_spiffe": OWN}
    check_names("billing", [SubjectName("DNS", "api.orders.internal")], owners=owners, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(PermissionDenied, match="registered to service 'orders'"):
        check_names("billing", [SubjectName("DNS", "web.orders.internal")], owners=owners, **kwargs)  # type: ignore[arg-type]
