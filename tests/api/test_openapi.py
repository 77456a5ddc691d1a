"""The OpenAPI document against the in-process app: what it promises for errors, constraints
and methods is what the server does (test_openapi_conformance.py fuzzes the rest)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from pkiforge.api.problems import PROBLEM, PROBLEM_REF, Problem
from pkiforge.clock import FixedClock
from pkiforge.settings import ProfileSettings
from pkiforge.wiring import build_app, build_pki
from tests.ca.helpers import NOW, PASSPHRASE, make_settings

from .helpers import Api, make_csr

# a value for each path parameter that its pattern accepts
PATH_VALUES = {"serial": "0a", "name": "root", "issuer": "root", "encoded": "MAA="}


def _concrete(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES.get(m.group(1), "x"), path)


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(p, m, op) for p, ops in doc["paths"].items() for m, op in ops.items()]


async def test_every_path_answers_an_undocumented_method_with_all_its_methods(api: Api) -> None:
    doc = api.app.openapi()
    for path, methods in doc["paths"].items():
        r = await api.client.request("OPTIONS", _concrete(path))
        assert r.status_code == 405, (path, r.text)
        assert r.headers["content-type"] == PROBLEM
        assert r.headers["allow"] == ", ".join(sorted(m.upper() for m in methods)), path


@pytest.mark.parametrize(
    ("path", "allow"),
    [
        ("/api/v1/keys/k1", "DELETE, GET"),
        ("/api/v1/certificates/0a/revoke", "DELETE, POST"),
        ("/api/v1/certificates/request", "POST"),  # not the methods of /{serial}
    ],
    ids=["keys-key", "revoke", "literal-before-template"],
)
async def test_allow_names_every_method_of_the_path(api: Api, path: str, allow: str) -> None:
    r = await api.client.request("PATCH", path)
    assert (r.status_code, r.headers["allow"]) == (405, allow)


async def test_every_error_answer_is_documented_as_a_problem(api: Api) -> None:
    doc = api.app.openapi()
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    assert doc["components"]["schemas"]["Problem"]["required"] == [
        "type",
        "title",
        "status",
        "detail",
    ]
    for path, method, op in _operations(doc):
        errors = {s: r for s, r in op["responses"].items() if int(s) >= 400}
        assert {"413", "500", "503"} <= errors.keys(), (method, path)
        for status, response in errors.items():
            assert response["content"] == {PROBLEM: {"schema": {"$ref": PROBLEM_REF}}}, status


@pytest.mark.parametrize(
    ("method", "path", "authenticated"),
    [
        ("get", "/api/v1/certificates/{serial}", True),
        ("post", "/api/v1/certificates/request", True),
        ("get", "/api/v1/keys", True),
        ("get", "/api/v1/whoami", True),
        ("get", "/api/v1/ca/{name}", False),
        ("get", "/healthz", False),
    ],
)
async def test_routes_that_authenticate_document_401_and_403(
    api: Api, method: str, path: str, authenticated: bool
) -> None:
    responses = api.app.openapi()["paths"][path][method]["responses"]
    assert ({"401", "403"} <= responses.keys()) is authenticated


async def _documented(api: Api, method: str, template: str, response: httpx.Response) -> None:
    """The answer's status is documented for the operation, and its body is a Problem."""
    op = api.app.openapi()["paths"][template][method]
    assert str(response.status_code) in op["responses"], response.text
    assert response.headers["content-type"] == PROBLEM
    Problem.model_validate(response.json())


@pytest.mark.parametrize(
    ("template", "path"),
    [
        ("/api/v1/certificates/{serial}", "/api/v1/certificates/xyz"),
        ("/api/v1/certificates/{serial}", "/api/v1/certificates/0x" + "a" * 41),
        ("/api/v1/crl/check/{serial}", "/api/v1/crl/check/12:3"),
        ("/api/v1/crl/check/{serial}", "/api/v1/crl/check/zz"),
        ("/api/v1/certificates/{serial}/download", "/api/v1/certificates/zz/download"),
    ],
    ids=["not-hex", "too-long", "bad-octets", "check-not-hex", "download-not-hex"],
)
async def test_a_serial_outside_the_pattern_is_a_bad_request_naming_it(
    api: Api, template: str, path: str
) -> None:
    r = await api.client.get(path, headers=api.as_("billing"))
    assert r.status_code == 400, r.text
    assert r.json()["field"] == "serial" and "hex serial" in r.json()["detail"]
    await _documented(api, "get", template, r)


async def test_a_literal_path_beside_a_serial_is_not_read_as_one(api: Api) -> None:
    r = await api.client.get("/api/v1/certificates/request", headers=api.as_("billing"))
    assert (r.status_code, r.headers["allow"]) == (405, "POST")


@pytest.mark.parametrize("serial", ["0a", "0X0A", "0a:1b", "a" * 40])
async def test_a_serial_inside_the_pattern_is_looked_up(api: Api, serial: str) -> None:
    r = await api.client.get(f"/api/v1/certificates/{serial}", headers=api.as_("billing"))
    assert r.status_code == 404, r.text
    await _documented(api, "get", "/api/v1/certificates/{serial}", r)


async def test_the_largest_documented_page_of_keys_is_served(api: Api) -> None:
    limit = api.app.openapi()["paths"]["/api/v1/keys"]["get"]["parameters"][2]
    assert (limit["name"], limit["schema"]["maximum"]) == ("limit", 500)
    r = await api.client.get("/api/v1/keys?limit=500", headers=api.as_("ops"))
    assert r.status_code == 200, r.text
    assert r.json()["limit"] == 500


@pytest.mark.parametrize(
    ("value", "status"),
    [
        ("2030-01-01T00:00:00Z", 200),
        ("2030-01-01T00:00:00.5+02:00", 200),
        ("0.5", 422),  # a Unix time pydantic would read, but not a `date-time`
        ("2030-01-01", 422),
        ("2030-01-01T00:00:00", 422),  # RFC 3339 wants the offset
    ],
)
async def test_dates_are_rfc3339_as_documented(api: Api, value: str, status: int) -> None:
    r = await api.client.get(
        "/api/v1/certificates", params={"expiring_before": value}, headers=api.as_("ops")
    )
    assert r.status_code == status, r.text


@pytest.mark.parametrize(
    ("field", "body"),
    [
        ("csr", {"csr": "hello"}),
        ("endpoints", {"service_id": "billing", "service_name": "b", "endpoints": ["a b"]}),
        ("public_key", {"public_key": "ssh-ed25519 AAAA", "client_name": "c"}),
    ],
)
async def test_pem_and_uri_fields_are_checked_as_documented(
    api: Api, field: str, body: dict[str, Any]
) -> None:
    path = {
        "csr": "/api/v1/certificates/request",
        "endpoints": "/api/v1/services/register",
        "public_key": "/api/v1/keys",
    }[field]
    r = await api.client.post(path, json=body, headers=api.as_("ops"))
    assert r.status_code == 422, r.text
    error = r.json()["errors"][0]
    assert error["field"].split(".")[0] == field
    assert "pattern" not in error["reason"]  # a sentence, not the regex
    await _documented(api, "post", path, r)


def _profiles(doc: dict[str, Any]) -> list[str]:
    """The names `profile` may take (it may also be null: the default)."""
    profile = doc["components"]["schemas"]["CertificateRequest"]["properties"]["profile"]
    names = [branch for branch in profile["anyOf"] if branch.get("type") == "string"]
    assert {"type": "null"} in profile["anyOf"] and len(names) == 1, profile
    enum: list[str] = names[0]["enum"]
    return enum


async def test_profiles_in_the_document_are_the_servers(api: Api, tmp_path: Path) -> None:
    assert _profiles(api.app.openapi()) == ["client", "server", "service"]
    robot = ProfileSettings(ekus=["clientAuth"], default_validity="1d", max_validity="2d")
    settings = make_settings(tmp_path).model_copy(update={"profiles": {"robot": robot}})
    pki = build_pki(settings, PASSPHRASE, FixedClock(NOW))
    try:
        assert _profiles(build_app(pki.settings, pki).openapi()) == ["robot"]
    finally:
        pki.close()


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"service_id": "billing", "service_name": "b", "auto_renew": 0}, 422),
        ({"service_id": "billing", "service_name": "b", "auto_renew": False}, 201),
    ],
    ids=["number-for-boolean", "boolean"],
)
async def test_booleans_are_json_booleans(api: Api, body: dict[str, Any], status: int) -> None:
    r = await api.client.post("/api/v1/services/register", json=body, headers=api.as_("billing"))
    assert r.status_code == status, r.text


@pytest.mark.parametrize(
    ("days", "status"),
    [(30, 201), (30.0, 201), ("30", 422), (True, 422)],
    ids=["integer", "integral-number", "string", "boolean"],
)
async def test_validity_days_is_a_json_integer(api: Api, days: object, status: int) -> None:
    body = {"csr": make_csr("billing.internal", ["billing.internal"]), "validity_days": days}
    r = await api.client.post("/api/v1/certificates/request", json=body, headers=api.as_("billing"))
    assert r.status_code == status, r.text


def _keys(node: object) -> set[str]:
    if isinstance(node, dict):
        return set(node) | {k for v in node.values() for k in _keys(v)}
    if isinstance(node, list):
        return {k for v in node for k in _keys(v)}
    return set()


async def test_bounds_are_json_schema_keywords(api: Api) -> None:
    # pydantic writes `ge`/`le` (which clients ignore) when a bound follows a validator
    schemas = api.app.openapi()["components"]["schemas"]
    assert not {"ge", "le", "gt", "lt"} & _keys(schemas)
    days = schemas["CertificateRequest"]["properties"]["validity_days"]["anyOf"][0]
    assert (days["minimum"], days["maximum"]) == (1, 3650)
