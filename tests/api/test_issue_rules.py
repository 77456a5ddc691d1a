"""The CLI and the API turn the same admin request into the same IssueRequest and rules."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from pkiforge.api.routers.certificates import issue_request
from pkiforge.api.schemas.certificates import CertificateRequest
from pkiforge.ca.authorization import Caller, Operation, ServicePolicy
from pkiforge.ca.authorize import operator_rules, service_rules
from pkiforge.cli import cert_cmd
from pkiforge.x509.names import SubjectName

from ..ca.helpers import TRUST_DOMAIN, csr_bytes

ADMIN = Caller("ops", ServicePolicy(frozenset(Operation)))


class Registry:
    def name_view(
        self, service_id: str, names: Sequence[SubjectName]
    ) -> tuple[tuple[str, ...], dict[str, str]]:
        raise AssertionError("an admin's names are not looked up")


def _never(service_id: str) -> int:
    raise AssertionError("an admin's certificates are not counted")


# (CLI options of `cert issue`, the API's request body) for one request
CASES: list[tuple[dict[str, Any], dict[str, Any]]] = [
    (
        {
            "csr": csr_bytes("p256"),
            "san": ["DNS:api.example.internal", "IP:10.0.0.1", "URI:https://api.example.internal/"],
            "service": "web",
            "profile": "server",
            "issuer": "issuing",
            "validity": "30d",
        },
        {
            "csr": csr_bytes("p256").decode(),
            "san_dns": ["api.example.internal"],
            "san_ip": ["10.0.0.1"],
            "san_uri": ["https://api.example.internal/"],
            "service_id": "web",
            "profile": "server",
            "issuer": "issuing",
            "validity_days": 30,
        },
    ),
    (
        {
            "csr": None,
            "cn": "db.example.internal",
            "san": ["DNS:*.db.example.internal"],
            "service": "db",
            "key_type": "p384",
        },
        {
            "common_name": "db.example.internal",
            "san_dns": ["*.db.example.internal"],
            "service_id": "db",
            "key_type": "p384",
        },
    ),
]


@pytest.mark.parametrize(("cli", "api"), CASES, ids=["csr", "server-made-key"])
def test_cli_and_api_produce_the_same_request_and_rules(
    cli: dict[str, Any], api: dict[str, Any]
) -> None:
    options = dict(cli)
    from_cli = cert_cmd.issue_request(options.pop("csr"), **options)
    from_api = issue_request(CertificateRequest.model_validate(api))
    assert from_cli == from_api
    cli_rules = operator_rules(from_cli)
    api_rules = service_rules(
        ADMIN, from_api, registry=Registry(), count_active=_never, trust_domain=TRUST_DOMAIN
    )
    assert cli_rules == api_rules
    assert api_rules.service_id == from_api.service_id
