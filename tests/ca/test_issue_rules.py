"""The caller's rules (`ca/issue_rules.py`): each refuses with its exception, field and message."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Sequence
from dataclasses import replace

import pytest

from pkiforge.ca.issue_rules import (
    IssuanceRules,
    NameGrant,
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
from pkiforge.errors import InvalidName, PermissionDenied, PkiError, PolicyViolation
from pkiforge.x509.names import SubjectName, spiffe_id

DAY = dt.timedelta(days=1)
OWN = spiffe_id("t.internal", "billing")


class Registry:
    """A registry where `billing` holds billing.internal and `orders` holds orders.internal."""

    def __init__(self) -> None:
        self.asked: list[Sequence[SubjectName]] = []

    def name_view(
        self, service_id: str, names: Sequence[SubjectName]
    ) -> tuple[tuple[str, ...], dict[str, str]]:
        self.asked.append(names)
        registered = ("DNS:billing.internal",) if service_id == "billing" else ()
        return registered, {"DNS:orders.internal": "orders"}


GRANT = NameGrant("billing", ("*.billing.internal",), OWN, Registry())
LIMITED = IssuanceRules(
    service_id="billing",
    token_profile="service",
    names=GRANT,
    profiles=("service",),
    max_validity=30 * DAY,
    max_certificates=2,
    active_certificates=1,
    server_key=False,
)
OPERATOR = IssuanceRules()
DNS = [SubjectName("DNS", "billing.internal")]

Check = Callable[[IssuanceRules], None]

CASES: list[tuple[str, Check, type[PkiError], str | None, str | None, str]] = [
    (
        "token-profile",
        lambda r: check_token_profile(r, "server"),
        PermissionDenied,
        "token-profile",
        "profile",
        "this enrollment token is for profile 'service'",
    ),
    (
        "name-owned",
        lambda r: check_names_owned(r, "orders.internal", DNS),
        PermissionDenied,
        "name-owned",
        "names",
        "name DNS:orders.internal is registered to service 'orders', not 'billing'",
    ),
    (
        "name-not-allowed",
        lambda r: check_names_owned(r, "billing.internal", [SubjectName("DNS", "x.internal")]),
        PermissionDenied,
        "name-not-allowed",
        "names",
        "name DNS:x.internal is not registered to service 'billing'",
    ),
    (
        "bad-cn",
        lambda r: check_names_owned(r, "bad_name!", DNS),
        InvalidName,
        None,
        "san",
        "invalid label",
    ),
    (
        "profile",
        lambda r: check_profile_allowed(r, "server"),
        PermissionDenied,
        "profile",
        "profile",
        "profile 'server' is not allowed; use one of service",
    ),
    (
        "validity",
        lambda r: check_validity(r, 31 * DAY),
        PermissionDenied,
        "validity",
        "validity_days",
        "validity of 31 days exceeds this service's maximum of 30 days",
    ),
    (
        "quota",
        lambda r: check_quota(replace(r, active_certificates=2)),  # at the limit
        PermissionDenied,
        "quota",
        None,
        "the service already holds 2 active certificates (max_certificates 2)",
    ),
    (
        "server-key",
        lambda r: check_server_key(r, True),
        PermissionDenied,
        "server-key",
        "key_type",
        "server-made keys are not allowed for this service; send a CSR",
    ),
]


@pytest.mark.parametrize(
    ("check", "error", "reason", "field", "message"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_each_rule_refuses_with_its_reason(
    check: Check, error: type[PkiError], reason: str | None, field: str | None, message: str
) -> None:
    with pytest.raises(error, match=re.escape(message)) as info:
        check(LIMITED)
    assert info.value.data.get("reason") == reason
    assert info.value.data.get("field") == field


LIMITS = [case for case in CASES if case[2] is PermissionDenied]


@pytest.mark.parametrize("check", [case[1] for case in LIMITS], ids=[case[0] for case in LIMITS])
def test_an_operator_passes_every_limit(check: Check) -> None:
    check(OPERATOR)


def test_names_owned_asks_the_registry_for_the_cn_and_the_names() -> None:
    registry = Registry()
    rules = IssuanceRules(names=NameGrant("billing", (), OWN, registry))
    check_names_owned(rules, "billing.internal", [*DNS, OWN])
    assert registry.asked == [[DNS[0], *DNS, OWN]]


def test_whitelisted_patterns_and_the_own_spiffe_id_pass() -> None:
    names = [SubjectName("DNS", "api.billing.internal"), OWN]
    check_names_owned(LIMITED, "billing.internal", names)


def test_max_validity_caps_the_default_but_not_an_explicit_request() -> None:
    assert capped_validity(LIMITED, None, 365 * DAY) == 30 * DAY
    assert capped_validity(LIMITED, None, 10 * DAY) == 10 * DAY
    assert capped_validity(LIMITED, 90 * DAY, 365 * DAY) == 90 * DAY  # then refused by check
    assert capped_validity(OPERATOR, None, 365 * DAY) is None


@pytest.mark.parametrize(
    ("allowed", "refused"),
    [(True, False), (False, True)],
    ids=["profile-allows", "profile-forbids"],
)
def test_wildcards_follow_the_profile(allowed: bool, refused: bool) -> None:
    names = [*DNS, SubjectName("DNS", "*.api.billing.internal")]
    if not refused:
        check_wildcards(names, allowed)
        return
    with pytest.raises(
        PolicyViolation, match=re.escape("'*.api.billing.internal' is not allowed")
    ) as info:
        check_wildcards(names, allowed)
    assert info.value.data["field"] == "san"


def test_a_renewal_csr_may_not_add_names() -> None:
    check_renewed_names(DNS, [*DNS, OWN])
    with pytest.raises(PolicyViolation, match=re.escape("DNS:new.internal is new")) as info:
        check_renewed_names([SubjectName("DNS", "new.internal")], DNS)
    assert info.value.data["field"] == "csr"
