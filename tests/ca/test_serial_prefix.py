"""`OperatorCertificates.resolve_serial`: a whole serial, or a unique prefix of one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pkiforge.ca.operator_certs import MIN_SERIAL_PREFIX
from pkiforge.errors import InvalidInput, NotFound
from pkiforge.wiring import Pki

from .helpers import csr_bytes

# three serials: the first two share their first 12 hex digits, the third only 4 of them
SERIALS = [
    0x1234_5678_9ABC_0000_0000_0000_0000_0000_0001,
    0x1234_5678_9ABC_1111_0000_0000_0000_0000_0002,
    0x1234_9999_0000_0000_0000_0000_0000_0000_0003,
]


@pytest.fixture
def issued(pki: Pki) -> Pki:
    drawn: Iterator[int] = iter(SERIALS)
    pki.ctx.serials = lambda: next(drawn)
    for _ in SERIALS:
        request = pki.certificates.request_from_csr(csr_bytes("p256"), service_id="web")
        pki.certificates.issue(request)
    return pki


CASES = [
    (format(SERIALS[0], "x"), SERIALS[0]),
    (format(SERIALS[0], "X"), SERIALS[0]),  # as openssl prints it
    ("0x" + format(SERIALS[1], "x"), SERIALS[1]),
    ("123456789abc0", SERIALS[0]),
    ("123456789ABC1", SERIALS[1]),
    ("12:34:99:99", SERIALS[2]),  # colons, as in openssl's text output
    ("0012349999", SERIALS[2]),  # leading zeros are not digits of the serial
]


@pytest.mark.parametrize(("text", "serial"), CASES, ids=[c[0] for c in CASES])
def test_whole_serial_or_unique_prefix(issued: Pki, text: str, serial: int) -> None:
    assert issued.certificates.resolve_serial(text) == serial


def test_ambiguous_prefix_says_how_many(issued: Pki) -> None:
    with pytest.raises(InvalidInput, match=r"serial prefix 12345678 matches 2 certificates"):
        issued.certificates.resolve_serial("12345678")
    with pytest.raises(InvalidInput, match="matches 2 certificates; give more digits"):
        issued.certificates.resolve_serial("123456789abc")


def test_short_prefix_is_not_taken(issued: Pki) -> None:
    short = "1234999"
    assert len(short) < MIN_SERIAL_PREFIX
    with pytest.raises(InvalidInput, match=f"at least {MIN_SERIAL_PREFIX} hex digits"):
        issued.certificates.resolve_serial(short)


def test_unknown_prefix_and_malformed_serial(issued: Pki) -> None:
    with pytest.raises(NotFound, match="no certificate with serial 87654321"):
        issued.certificates.resolve_serial("87654321")
    with pytest.raises(InvalidInput, match="invalid serial") as raised:
        issued.certificates.resolve_serial("12345678zz")
    assert raised.value.field == "serial"


def test_percent_and_underscore_are_not_wildcards(issued: Pki) -> None:
    for text in ("1234567%", "1234567_"):
        with pytest.raises(InvalidInput, match="invalid serial"):
            issued.certificates.resolve_serial(text)
