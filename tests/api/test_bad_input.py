"""Bad input gets a 4xx problem+json naming the field and the reason, never a 500."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import DATA

from .helpers import Api, make_csr

CSR = "/api/v1/certificates/request"
GOOD_CSR = make_csr("billing.internal", ["billing.internal"])
CASES: list[tuple[str, str, str, Any, int, str]] = [
    # id, method, path, json body (or raw bytes), status, field named
    ("json-syntax", "POST", CSR, b'{"csr": ', 422, ""),
    ("json-not-object", "POST", CSR, b"[1, 2]", 422, ""),
    ("unknown-field", "POST", CSR, {"csr": GOOD_CSR, "bogus": 1}, 422, "bogus"),
    ("wrong-type", "POST", CSR, {"csr": GOOD_CSR, "san_dns": "x"}, 422, "san_dns"),
    ("not-pem", "POST", CSR, {"csr": "hello"}, 422, "csr"),
    (
        "bad-base64",
        "POST",
        CSR,
        {"csr": "-----BEGIN CERTIFICATE REQUEST-----\n@@\n-----END CERTIFICATE REQUEST-----\n"},
        400,
        "csr",
    ),
    (
        "bad-signature",
        "POST",
        CSR,
        {"csr": (DATA / "csr-bad-signature.pem").read_text()},
        400,
        "csr",
    ),
    ("weak-key", "POST", CSR, {"csr": (DATA / "csr-rsa1024.pem").read_text()}, 400, "csr"),
    (
        "dns-name",
        "POST",
        CSR,
        {"csr": GOOD_CSR, "san_dns": ["ok.internal", "bad_name!"]},
        400,
        "san_dns[1]",
    ),
    ("ip", "POST", CSR, {"csr": GOOD_CSR, "san_ip": ["999.1.1.1"]}, 400, "san_ip[0]"),
    ("uri", "POST", CSR, {"csr": GOOD_CSR, "san_uri": ["no scheme"]}, 400, "san_uri[0]"),
    ("validity-zero", "POST", CSR, {"csr": GOOD_CSR, "validity_days": 0}, 422, "validity_days"),
    (
        "key-type",
        "POST",
        CSR,
        {"common_name": "billing.internal", "key_type": "dsa"},
        400,
        "key_type",
    ),
    ("csr-and-key", "POST", CSR, {"csr": GOOD_CSR, "key_type": "p256"}, 400, "key_type"),
    ("profile", "POST", CSR, {"csr": GOOD_CSR, "profile": "nope"}, 400, "profile"),
    ("issuer", "POST", CSR, {"csr": GOOD_CSR, "issuer": "nope"}, 404, "issuer"),
    ("root-issuer", "POST", CSR, {"csr": GOOD_CSR, "issuer": "root"}, 400, "issuer"),
    ("unknown-serial", "GET", "/api/v1/certificates/abc123", None, 404, "serial"),
    ("non-hex-serial", "GET", "/api/v1/certificates/xyz", None, 400, "serial"),
    ("non-hex-renew", "POST", "/api/v1/certificates/xyz/renew", {}, 400, "serial"),
    ("non-hex-check", "GET", "/api/v1/crl/check/zz", None, 400, "serial"),
    ("unknown-path", "GET", "/api/v1/certificates/xyz/nothing", None, 404, ""),
    ("renew-unknown", "POST", "/api/v1/certificates/abc/renew", {}, 404, "serial"),
    (
        "revoke-reason",
        "POST",
        "/api/v1/certificates/abc/revoke",
        {"reason": "bored"},
        400,
        "reason",
    ),
    (
        "revoke-date",
        "POST",
        "/api/v1/certificates/abc/revoke",
        {"invalidity_date": "soon"},
        422,
        "invalidity_date",
    ),
    ("list-limit", "GET", "/api/v1/certificates?limit=0", None, 422, "limit"),
    ("list-status", "GET", "/api/v1/certificates?status=odd", None, 422, "status"),
    ("list-unknown", "GET", "/api/v1/certificates?colour=red", None, 422, "colour"),
    (
        "service-id",
        "POST",
        "/api/v1/services/register",
        {"service_id": "Bad Id", "service_name": "x"},
        400,
        "service_id",
    ),
    (
        "endpoint",
        "POST",
        "/api/v1/services/register",
        {"service_id": "billing", "service_name": "x", "endpoints": ["not a url"]},
        422,
        "endpoints",
    ),
    (
        "service-name",
        "POST",
        "/api/v1/services/register",
        {"service_id": "billing", "service_name": "b", "names": ["bad_name!"]},
        400,
        "names",
    ),
    ("update-unknown", "PUT", "/api/v1/services/billing", {"service_name": "x"}, 404, "service_id"),
    ("update-field", "PUT", "/api/v1/services/billing", {"status": "gone"}, 422, "status"),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "field"),
    [pytest.param(*c[1:], id=c[0]) for c in CASES],
)
async def test_bad_input_is_a_problem_naming_the_field(
    api: Api, method: str, path: str, body: Any, status: int, field: str
) -> None:
    kwargs: dict[str, Any] = {"headers": {**api.as_("billing")}}
    if isinstance(body, bytes):
        kwargs["content"] = body
        kwargs["headers"]["content-type"] = "application/json"
    elif body is not None:
        kwargs["json"] = body
    r = await api.client.request(method, path, **kwargs)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["status"] == status and problem["detail"]
    fields = [problem.get("field")] + [e["field"] for e in problem.get("errors", [])]
    assert any(field in (f or "") for f in fields), problem
    assert "Traceback" not in r.text


async def test_oversize_body_is_refused_before_it_is_read(api: Api) -> None:
    big = b'{"csr": "' + b"A" * 70_000 + b'"}'
    r = await api.client.post(CSR, headers=api.as_("billing"), content=big)
    assert r.status_code == 413 and r.json()["field"] == "body"

    async def chunks() -> Any:  # no Content-Length: counted while streaming
        for _ in range(20):
            yield b" " * 8192

    r = await api.client.post(CSR, headers=api.as_("billing"), content=chunks())
    assert r.status_code == 413
    assert r.headers["content-type"] == "application/problem+json"
