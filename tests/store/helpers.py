"""Domain values to store: a self-signed certificate from committed keys, records, entries."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

from bench.fleet import insert_fleet
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID
from sqlalchemy import text

from pkiforge.ca.audit import next_entry
from pkiforge.ca.models import (
    Actor,
    AuditEntry,
    CAKind,
    CARecord,
    CAStatus,
    CertificateRecord,
    CertStatus,
)
from pkiforge.store.db import SqlStore
from tests.conftest import DATA

NOW = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.UTC)
PLUS_0530 = dt.timezone(dt.timedelta(hours=5, minutes=30))
DAY = dt.timedelta(days=1)


def certificate(serial: int = 1000, cn: str = "store.example.internal") -> x509.Certificate:
    key = serialization.load_pem_private_key((DATA / "key-p256.pem").read_bytes(), None)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())  # type: ignore[arg-type]
        .serial_number(serial)
        .not_valid_before(NOW)
        .not_valid_after(NOW + DAY)
        .sign(key, hashes.SHA256())  # type: ignore[arg-type]
    )


def ca(name: str = "services", **changes: object) -> CARecord:
    record = CARecord(
        name=name,
        kind=CAKind.INTERMEDIATE,
        status=CAStatus.ACTIVE,
        parent=None,
        certificate=None,
        key_ref=f"file:ca/{name}/key.pem",
        created_at=NOW,
    )
    return replace(record, **changes)  # type: ignore[arg-type]


def cert_record(serial: int, **changes: object) -> CertificateRecord:
    record = CertificateRecord(
        serial=serial,
        issuer="services",
        profile="service",
        common_name="web.example.internal",
        names=("DNS:web.example.internal", "URI:spiffe://example.internal/web"),
        status=CertStatus.ACTIVE,
        created_at=NOW,
        service_id="web",
        not_before=NOW,
        not_after=NOW + 30 * DAY,
    )
    return replace(record, **changes)  # type: ignore[arg-type]


FLEET_ISSUERS = ("services", "edge", "internal", "iot", "legacy")


def fleet(store: SqlStore, count: int) -> list[dict[str, Any]]:
    """`count` certificates shaped like a fleet (bench/fleet.py) under five issuers, the
    table analysed on PostgreSQL (so that its planner sees the skew); the rows inserted."""
    pem = certificate().public_bytes(serialization.Encoding.PEM).decode()
    with store.transaction() as tx:
        for name in FLEET_ISSUERS:
            tx.cas.add(ca(name))
    with store.engine.begin() as conn:
        rows = insert_fleet(conn, count, NOW, seed=7, pems=[pem])
        if conn.dialect.name == "postgresql":
            conn.execute(text("ANALYZE certificates"))
    return rows


def append_audit(store: SqlStore, n: int, actor: str = "t") -> list[AuditEntry]:
    """Append `n` entries, one transaction each, the way CAContext.audit does."""
    out = []
    for i in range(n):
        with store.transaction() as tx:
            entry = next_entry(
                tx.audit.head(),
                at=NOW + dt.timedelta(seconds=i, microseconds=123456),
                actor=Actor("operator", actor),
                action="test.append",
                subject=f"s{i}",
                details={"i": i, "text": "ünïcode ✓", "nested": {"list": [1, 2]}},
            )
            tx.audit.add(entry)
            out.append(entry)
    return out
