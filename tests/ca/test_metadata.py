"""Certificate metadata: bounded, stored with the record, audited, carried on renewal."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from pkiforge.ca.metadata import MAX_METADATA_BYTES, check_metadata
from pkiforge.errors import InvalidInput
from pkiforge.wiring import Pki

from .helpers import csr_bytes, snapshot

META = {"team": "payments", "tags": ["pci", "eu"], "owner": {"contact": {"email": "p@x"}}}


def _nested(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(levels - 1):
        value = {"n": value}
    return value


def test_limits_allow_up_to_four_levels_and_4096_bytes() -> None:
    assert check_metadata(None) == {}
    assert check_metadata({}) == {}
    assert check_metadata(_nested(4)) == _nested(4)
    assert check_metadata({"a": [[[1]]]}) == {"a": [[[1]]]}  # object, then three arrays
    exact = {"k": "x" * (MAX_METADATA_BYTES - len('{"k":""}'))}
    assert check_metadata(exact) == exact
    # JSON-normal copy: tuples become lists, nothing aliases the caller's objects
    given = {"t": (1, 2), "d": {"x": 1}}
    clean = check_metadata(given)
    assert clean == {"t": [1, 2], "d": {"x": 1}} and clean["d"] is not given["d"]


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (_nested(5), "deeper than 4"),
        ({"a": [[[[1]]]]}, "deeper than 4"),
        ({"k": "x" * (MAX_METADATA_BYTES - len('{"k":""}') + 1)}, "4097 bytes"),
        ({"k": "é" * 2100}, "4208 bytes"),  # bytes of UTF-8, not characters
        ({1: "a"}, "keys must be strings"),
        ({"a": {"b": {2: "c"}}}, "keys must be strings"),
        ({"a": float("nan")}, "plain JSON"),
        ({"a": object()}, "plain JSON"),
        (["not", "an", "object"], "JSON object"),
    ],
    ids=[
        "5-objects", "object-4-arrays", "4097-bytes", "utf8-bytes", "int-key", "nested-int-key",
        "nan", "not-json", "array",
    ],
)  # fmt: skip
def test_refused_metadata_names_the_field(value: Any, words: str) -> None:
    with pytest.raises(InvalidInput) as info:
        check_metadata(value)
    assert info.value.field == "metadata"
    assert words in str(info.value)


def test_issue_stores_audits_and_renewal_keeps_metadata(pki: Pki) -> None:
    request = replace(pki.certificates.request_from_csr(csr_bytes("p256")), metadata=META)
    record = pki.certificates.issue(request)
    assert record.metadata == META
    assert pki.certificates.get(record.serial).metadata == META
    renewed = pki.certificates.renew(record.serial)
    assert renewed.metadata == META
    assert pki.certificates.get(renewed.serial).metadata == META
    plain = pki.certificates.issue(pki.certificates.request_from_csr(csr_bytes("p256-b")))
    assert plain.metadata == {}
    with pki.store.transaction(readonly=True) as tx:
        issued = {e.subject: e.details for e in tx.audit.recent(10, action="cert.issue")}
        renewal = tx.audit.recent(1, action="cert.renew")[0].details
    assert issued[record.serial_hex]["metadata"] == META
    assert "metadata" not in issued[plain.serial_hex]  # only when there is some
    assert renewal["metadata"] == META


def test_refused_metadata_reserves_no_serial(pki: Pki) -> None:
    before = snapshot(pki)
    request = pki.certificates.request_from_csr(csr_bytes("p256"))
    with pytest.raises(InvalidInput) as info:
        pki.certificates.issue(replace(request, metadata=_nested(5)))
    assert info.value.field == "metadata"
    assert snapshot(pki) == before
