"""Fill a pkiforge store with N certificates shaped like a real fleet, fast (not by issuing).

The rows go straight into `certificates` (and `revocations`): PostgreSQL by COPY, any store
through SQLAlchemy's executemany (`insert_fleet`, what the tests use at a few thousand rows).
The store must be migrated and hold its CAs (`pkiforge init`, then `pkiforge ca create-...`
for more intermediates): the issuers are the store's intermediates, the first the busiest.

The fleet's shape (`Shape`; every draw from one seeded generator, so a seed is one fleet):

- services: a few large ones (5 services with 40% of the certificates between them), the
  rest spread evenly over `n / 200` small ones, and 2% with no service (operator-issued);
- issuers: weighted 55/25/12/5/3% (the first five intermediates; fewer share the same way);
- lifetimes: 90 days (70%), 30 days (20%), 365 days (10%);
- standing: 80% active (notAfter spread evenly over the rest of their lifetime, so about a
  third of the 90-day ones expire within 30 days), 14% expired within the last 400 days
  (2% of the rows expired before that and archived by the tidy job), 4% revoked (reasons
  mixed), 0.2% failed, 0.05% pending;
- created_at = notBefore = notAfter - lifetime, to the microsecond (ties are rare but real).

Certificate bodies are a few real certificates (P-256 and RSA-2048) reused; each row's serial
(159 random bits), SHA-256 fingerprint column (of the serial: unique, as the column must be),
names and metadata are its own.

    .venv/bin/python -m bench.fleet --url postgresql+psycopg://postgres@127.0.0.1/fleet \\
        --count 1000000
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import random
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from sqlalchemy import Connection, Table, insert, select, text

from pkiforge.store.db import make_engine
from pkiforge.store.tables import CARow, CertificateRow, RevocationRow

DAY = dt.timedelta(days=1)
REASONS = ("keyCompromise", "superseded", "cessationOfOperation", "unspecified")
COLUMNS = (
    "serial_number",
    "issuer",
    "profile",
    "common_name",
    "names",
    "service_id",
    "status",
    "created_at",
    "not_before",
    "not_after",
    "fingerprint_sha256",
    "pem",
    "server_generated_key",
    "renewed_from",
    "metadata",
    "archived_at",
)
REVOCATION_COLUMNS = ("serial_number", "reason", "revoked_at", "invalidity_date", "revoked_by")


@dataclass(frozen=True)
class Shape:
    """The fleet's proportions (see the module docstring)."""

    large_services: Sequence[float] = (0.12, 0.10, 0.08, 0.06, 0.04)
    no_service: float = 0.02
    issuer_weights: Sequence[float] = (0.55, 0.25, 0.12, 0.05, 0.03)
    lifetimes: Sequence[tuple[int, float]] = ((90, 0.70), (30, 0.20), (365, 0.10))
    standing: Sequence[tuple[str, float]] = field(
        default=(
            ("active", 0.7975),
            ("expired", 0.14),
            ("archived", 0.02),
            ("revoked", 0.04),
            ("failed", 0.002),
            ("pending", 0.0005),
        )
    )


def sample_pems(count: int = 6) -> list[str]:
    """A few real certificates to reuse as bodies: P-256 mostly, one in three RSA-2048."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fleet sample issuer")])
    out = []
    for i in range(count):
        key: Any = (
            rsa.generate_private_key(65537, 2048)
            if i % 3 == 2
            else ec.generate_private_key(ec.SECP256R1())
        )
        name = f"sample-{i}.fleet.internal"
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
            .not_valid_after(dt.datetime(2026, 4, 1, tzinfo=dt.UTC))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        out.append(cert.public_bytes(Encoding.PEM).decode("ascii"))
    return out


def fleet_rows(
    count: int,
    issuers: Sequence[str],
    now: dt.datetime,
    *,
    seed: int = 1,
    shape: Shape | None = None,
    pems: Sequence[str] | None = None,
) -> Iterator[tuple[dict[str, Any], dict[str, Any] | None]]:
    """`count` certificate rows (column name -> value) and each one's revocation row, if any."""
    shape = shape or Shape()
    rng = random.Random(seed)
    pems = pems or sample_pems()
    small = max(1, count // 200)
    weights = list(shape.issuer_weights[: len(issuers)])
    lifetimes = [d for d, _ in shape.lifetimes]
    lifetime_weights = [w for _, w in shape.lifetimes]
    states = [s for s, _ in shape.standing]
    state_weights = [w for _, w in shape.standing]
    large_total = sum(shape.large_services)
    for _ in range(count):
        serial = format(rng.getrandbits(159) or 1, "x")
        pick = rng.random()
        if pick < shape.no_service:
            service = None
        elif pick < shape.no_service + large_total:
            service = f"large-{_index(shape.large_services, pick - shape.no_service)}"
        else:
            service = f"svc-{rng.randrange(small):05d}"
        issuer = rng.choices(issuers, weights)[0]
        life = dt.timedelta(days=rng.choices(lifetimes, lifetime_weights)[0])
        state = rng.choices(states, state_weights)[0]
        if state in ("active", "revoked", "pending", "failed"):
            not_after = now + life * rng.random()
        elif state == "expired":
            not_after = now - 400 * DAY * rng.random()
        else:  # archived: expired long ago
            not_after = now - 400 * DAY - 400 * DAY * rng.random()
        not_after = not_after.replace(microsecond=rng.randrange(1_000_000))
        created = not_after - life
        signed = state not in ("pending", "failed")
        host = f"{service or 'ops'}-{serial[:8]}.fleet.internal"
        row = {
            "serial_number": serial,
            "issuer": issuer,
            "profile": "service",
            "common_name": host,
            "names": [f"DNS:{host}"],
            "service_id": service,
            "status": {"expired": "active", "archived": "active"}.get(state, state),
            "created_at": created,
            "not_before": created if signed else None,
            "not_after": not_after if signed else None,
            "fingerprint_sha256": hashlib.sha256(serial.encode()).hexdigest() if signed else None,
            "pem": rng.choice(pems) if signed else None,
            "server_generated_key": False,
            "renewed_from": None,
            "metadata": {"team": f"team-{rng.randrange(40)}"} if rng.random() < 0.3 else None,
            "archived_at": not_after + 90 * DAY if state == "archived" else None,
        }
        revocation = None
        if state == "revoked":
            at = created + (now - created) * rng.random()
            revocation = {
                "serial_number": serial,
                "reason": rng.choice(REASONS),
                "revoked_at": at,
                "invalidity_date": None,
                "revoked_by": "fleet",
            }
        yield row, revocation


def _index(weights: Sequence[float], point: float) -> int:
    for i, w in enumerate(weights):
        if point < w:
            return i
        point -= w
    return len(weights) - 1


def issuers_of(conn: Connection) -> list[str]:
    """The store's intermediates, oldest first (the first gets the largest share)."""
    cas = CARow.__table__
    names = conn.execute(
        select(cas.c.name).where(cas.c.kind == "intermediate").order_by(cas.c.created_at)
    ).scalars()
    found = list(names)
    if not found:
        raise SystemExit("no intermediate CA in the store: run `pkiforge init` first")
    return found


def insert_fleet(
    conn: Connection,
    count: int,
    now: dt.datetime,
    *,
    seed: int = 1,
    pems: Sequence[str] | None = None,
    batch: int = 2000,
) -> list[dict[str, Any]]:
    """Insert `count` rows through SQLAlchemy (any store; the tests' few thousand); the rows."""
    issuers = issuers_of(conn)
    every: list[dict[str, Any]] = []
    certs: list[dict[str, Any]] = []
    revs: list[dict[str, Any]] = []
    for row, revocation in fleet_rows(count, issuers, now, seed=seed, pems=pems):
        every.append(row)
        certs.append(row)
        if revocation is not None:
            revs.append(revocation)
        if len(certs) >= batch:
            _flush(conn, certs, revs)
    _flush(conn, certs, revs)
    return every


def _flush(conn: Connection, certs: list[dict[str, Any]], revs: list[dict[str, Any]]) -> None:
    if certs:
        conn.execute(insert(cast(Table, CertificateRow.__table__)), certs)
    if revs:
        conn.execute(insert(cast(Table, RevocationRow.__table__)), revs)
    certs.clear()
    revs.clear()


def copy_fleet(url: str, count: int, now: dt.datetime, *, seed: int = 1) -> None:
    """COPY `count` rows into PostgreSQL, with progress on stderr, then ANALYZE."""
    import psycopg

    engine = make_engine(url)
    with engine.connect() as conn:
        issuers = issuers_of(conn)
    engine.dispose()
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    started = time.monotonic()
    with psycopg.connect(dsn) as pg, pg.cursor() as cur:
        cert_copy = f"COPY certificates ({', '.join(COLUMNS)}) FROM STDIN"
        revs: list[tuple[Any, ...]] = []
        with cur.copy(cert_copy) as copy:
            for i, (row, revocation) in enumerate(fleet_rows(count, issuers, now, seed=seed)):
                copy.write_row(_copy_values(row))
                if revocation is not None:
                    revs.append(tuple(revocation[c] for c in REVOCATION_COLUMNS))
                if i % 50_000 == 0 and i:
                    rate = i / (time.monotonic() - started)
                    print(f"{i:,} rows ({rate:,.0f}/s)", file=sys.stderr)
        with cur.copy(f"COPY revocations ({', '.join(REVOCATION_COLUMNS)}) FROM STDIN") as copy:
            for values in revs:
                copy.write_row(values)
        pg.commit()
        cur.execute("ANALYZE certificates")
        cur.execute("ANALYZE revocations")
    print(f"{count:,} rows in {time.monotonic() - started:.0f} s", file=sys.stderr)


def _copy_values(row: dict[str, Any]) -> tuple[Any, ...]:
    values = dict(row)
    values["names"] = json.dumps(row["names"])
    values["metadata"] = json.dumps(row["metadata"]) if row["metadata"] is not None else None
    return tuple(values[c] for c in COLUMNS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="a migrated PostgreSQL store's URL")
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if not args.url.startswith("postgresql"):
        raise SystemExit("COPY needs PostgreSQL; insert_fleet() serves other stores")
    with make_engine(args.url).connect() as conn:
        conn.execute(text("SELECT 1"))
    copy_fleet(args.url, args.count, dt.datetime.now(dt.UTC), seed=args.seed)


if __name__ == "__main__":
    main()
