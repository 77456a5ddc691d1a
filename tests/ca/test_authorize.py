"""Authorize steps (`ca/authorize.py`): the rules each kind of actor issues under."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pytest

from pkiforge.ca.authorization import Caller, Operation, ServicePolicy
from pkiforge.ca.authorize import operator_rules, renewal_rules, service_rules
from pkiforge.ca.enrollment import TokenSecret
from pkiforge.ca.issue_request import IssueRequest
from pkiforge.ca.issue_rules import IssuanceRules, NameGrant
from pkiforge.ca.models import CertificateRecord, CertStatus
from pkiforge.errors import PermissionDenied
from pkiforge.x509.names import SubjectName, spiffe_id

from .helpers import NOW, TRUST_DOMAIN

DAY = dt.timedelta(days=1)
ALL = frozenset(Operation) - {Operation.ADMIN}
ADMIN = ServicePolicy(frozenset(Operation))
LIMITED = ServicePolicy(
    ALL,
    max_certificates=2,
    allowed_names=("{service_id}.internal",),
    max_validity=30 * DAY,
    profiles=("service",),
)


class Registry:
    def name_view(
        self, service_id: str, names: Sequence[SubjectName]
    ) -> tuple[tuple[str, ...], dict[str, str]]:
        return (), {}


REGISTRY = Registry()


class Counter:
    """Counts active certificates as a store would, and how often it was asked."""

    def __init__(self, active: int) -> None:
        self.active = active
        self.asked: list[str] = []

    def __call__(self, service_id: str) -> int:
        self.asked.append(service_id)
        return self.active


def _service(caller: Caller, request: IssueRequest, active: int = 0) -> IssuanceRules:
    return service_rules(
        caller, request, registry=REGISTRY, count_active=Counter(active), trust_domain=TRUST_DOMAIN
    )


def test_an_admin_service_gets_the_operators_rules() -> None:
    request = IssueRequest("web.internal", service_id="web")
    assert _service(Caller("ops", ADMIN), request) == operator_rules(request)


def test_a_service_gets_its_whitelist_limits_names_and_quota() -> None:
    counter = Counter(1)
    rules = service_rules(
        Caller("web", LIMITED),
        IssueRequest("web.internal"),
        registry=REGISTRY,
        count_active=counter,
        trust_domain=TRUST_DOMAIN,
    )
    assert rules == IssuanceRules(
        service_id="web",
        names=NameGrant("web", ("web.internal",), spiffe_id(TRUST_DOMAIN, "web"), REGISTRY),
        profiles=("service",),
        max_validity=30 * DAY,
        max_certificates=2,
        active_certificates=1,
        server_key=False,
    )
    assert counter.asked == ["web"]


def test_without_a_quota_nothing_is_counted() -> None:
    counter = Counter(5)
    service_rules(
        Caller("web", ServicePolicy(ALL)),
        IssueRequest("web.internal"),
        registry=REGISTRY,
        count_active=counter,
        trust_domain=TRUST_DOMAIN,
    )
    assert counter.asked == []


def test_an_enrolling_service_carries_its_token_and_the_tokens_profile() -> None:
    caller = Caller("web", LIMITED, "10.0.0.9", "ab" * 8, "hash", "service")
    rules = _service(caller, IssueRequest("web.internal"))
    assert rules.token == TokenSecret("ab" * 8, "hash")
    assert rules.token_profile == "service"


@pytest.mark.parametrize(
    ("caller", "reason"),
    [
        (Caller("web", None), "whitelist"),
        (Caller("web", ServicePolicy(frozenset({Operation.RENEW}))), "operation"),
        (Caller("web", LIMITED), "not-owner"),
    ],
    ids=["unlisted", "no-request", "other-service"],
)
def test_a_service_is_refused_before_any_rule(caller: Caller, reason: str) -> None:
    with pytest.raises(PermissionDenied) as info:
        _service(caller, IssueRequest("db.internal", service_id="db"))
    assert info.value.data["reason"] == reason


def _record(status: CertStatus = CertStatus.ACTIVE) -> CertificateRecord:
    return CertificateRecord(
        serial=0x1234,
        issuer="issuing",
        profile="service",
        common_name="web.internal",
        names=("DNS:web.internal",),
        status=status,
        created_at=NOW,
        service_id="web",
        not_before=NOW - DAY,
        not_after=NOW + 30 * DAY,
    )


@pytest.mark.parametrize(
    ("active", "supersede", "counted"),
    [(1, False, 1), (2, True, 1), (3, True, 2)],
    ids=["below-quota", "at-quota", "over-quota"],
)
def test_renewal_at_the_quota_supersedes_and_takes_the_old_ones_place(
    active: int, supersede: bool, counted: int
) -> None:
    rules = renewal_rules(
        Caller("web", LIMITED),
        _record(),
        registry=REGISTRY,
        count_active=Counter(active),
        trust_domain=TRUST_DOMAIN,
        now=NOW,
    )
    assert rules.supersede is supersede
    assert rules.active_certificates == counted


def test_an_admin_renewal_never_supersedes() -> None:
    rules = renewal_rules(
        Caller("ops", ADMIN),
        _record(),
        registry=REGISTRY,
        count_active=Counter(9),
        trust_domain=TRUST_DOMAIN,
        now=NOW,
    )
    assert rules == IssuanceRules(service_id="web")
