"""Times at the ends of what a datetime can hold: an answer, or a 422 naming the parameter.

An offset moves a time that pydantic accepts past year 1 or year 9999 once converted to UTC;
every datetime the API reads (`expiring_before` in the list query, `invalidity_date` in the
revoke body) is converted at the edge, so none reaches the core as an OverflowError.
"""

from __future__ import annotations

from typing import Any

import pytest
from cryptography import x509

from .helpers import Api, make_csr

# (id, value, in range once in UTC, in the past)
EXTREMES = [
    ("year-1-east-offset", "0001-01-01T03:34:38+19:25", False, True),
    ("year-9999-west-offset", "9999-12-31T23:59:59-01:00", False, False),
    ("year-1-latest-offset", "0001-01-01T00:00:00+23:59", False, True),
    ("year-9999-earliest-offset", "9999-12-31T23:59:59.999999-23:59", False, False),
    ("first-instant", "0001-01-01T00:00:00Z", True, True),
    ("last-instant", "9999-12-31T23:59:59.999999Z", True, False),
    ("year-1-west-offset", "0001-01-01T00:00:00-23:59", True, True),
    ("year-9999-east-offset", "9999-12-31T23:59:59+23:59", True, False),
]
CASES = [pytest.param(*c[1:], id=c[0]) for c in EXTREMES]


def assert_names(problem: dict[str, Any], field: str) -> None:
    assert problem["status"] == 422
    assert problem["errors"][0]["field"].endswith(field), problem
    assert "outside the years 1-9999" in problem["detail"], problem


@pytest.mark.parametrize(("value", "in_range", "past"), CASES)
async def test_expiring_before(api: Api, value: str, in_range: bool, past: bool) -> None:
    r = await api.client.get(
        "/api/v1/certificates", params={"expiring_before": value}, headers=api.as_("billing")
    )
    if not in_range:
        assert r.status_code == 422, r.text
        assert_names(r.json(), "expiring_before")
        return
    assert r.status_code == 200, r.text
    assert r.json()["total"] == 0


@pytest.mark.parametrize(("value", "in_range", "past"), CASES)
async def test_invalidity_date(api: Api, value: str, in_range: bool, past: bool) -> None:
    headers = api.as_("billing")
    issued = await api.client.post(
        "/api/v1/certificates/request",
        json={"csr": make_csr("billing.internal", ["billing.internal"])},
        headers=headers,
    )
    serial = issued.json()["serial"]
    r = await api.client.post(
        f"/api/v1/certificates/{serial}/revoke",
        json={"reason": "keyCompromise", "invalidity_date": value},
        headers=headers,
    )
    if not in_range:
        assert r.status_code == 422, r.text
        assert_names(r.json(), "invalidity_date")
        return
    if not past:
        assert r.status_code == 400, r.text
        assert r.json()["field"] == "invalidity_date"
        assert "future" in r.json()["detail"]
        return
    assert r.status_code == 200, r.text
    assert r.json()["revocation"]["invalidity_date"].startswith("0001-01-01T")
    check = await api.client.get(f"/api/v1/crl/check/{serial}")
    assert check.status_code == 200 and check.json()["invalidity_date"].startswith("0001-01-01")
    # the date is carried on the next CRL, as an RFC 5280 §5.3.2 GeneralizedTime
    crl = x509.load_der_x509_crl(api.pki.revocation.generate_crl("services").der)
    entry = crl.get_revoked_certificate_by_serial_number(int(serial, 16))
    assert entry is not None
    date = entry.extensions.get_extension_for_class(x509.InvalidityDate).value
    assert date.invalidity_date_utc.year == 1


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00", "9999-12-31T23:59:59"])
async def test_a_date_without_an_offset_is_refused_naming_the_field(api: Api, value: str) -> None:
    """RFC 3339 needs an offset; the API does not guess one (the CLI takes such a date as UTC)."""
    r = await api.client.get(
        "/api/v1/certificates", params={"expiring_before": value}, headers=api.as_("billing")
    )
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"].endswith("expiring_before")
    assert "RFC 3339" in r.json()["detail"]
