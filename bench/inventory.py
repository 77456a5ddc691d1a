"""Inventory page latency over a large PostgreSQL store: each filter, first and deep pages,
the store query alone and through the HTTP API of a running `pkiforge serve`.

Fill the store first (bench/fleet.py), in a home made with `pkiforge init` on that database:

    export PKIFORGE_CA_PASSPHRASE=...
    pkiforge --home H --database-url postgresql://postgres@127.0.0.1/fleet init \\
        --root-key-type p256 --intermediate-key-type p256
    for n in edge internal iot legacy; do pkiforge --home H --database-url ... \\
        ca create-intermediate $n --key-type p256; done
    .venv/bin/python -m bench.fleet --url postgresql+psycopg://postgres@127.0.0.1/fleet
    .venv/bin/python -m bench.inventory --home H \\
        --url postgresql+psycopg://postgres@127.0.0.1/fleet

For each filter: the first page, and a deep one (the cursor of the row 80% of the way through
the matching rows, found once with an OFFSET before timing). `store`: `read_page` in a
read-only transaction of this process (the query, the total, the rows made into records);
`http`: `GET /api/v1/certificates` over one keep-alive mTLS connection as an admin, the
response read whole (every item carries its PEM and chain). The filters take turns, request
by request, so that the machine's load falls on all of them alike. `before` is the query this
replaced, on the same rows: ORDER BY ... OFFSET n, and an exact count(*) per page.

It prints the store's row count and its table and index sizes (pg_total_relation_size), the
load average at the start and end, and p50/p99 in milliseconds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select, text

from bench.issuance import free_port, process, wait_ready
from pkiforge.ca.models import CertificateQuery, CertStatus, PagePosition
from pkiforge.ca.paging import encode_cursor, order_of, read_page
from pkiforge.store.db import SqlStore
from pkiforge.store.repos import SqlCertificateRepository
from pkiforge.store.tables import CertificateRow

DAY = dt.timedelta(days=1)
ADMIN = "bench-admin"
WHITELIST = f"""\
services:
  - service_id: {ADMIN}
    allowed_operations: [admin]
"""


def filters(now: dt.datetime) -> dict[str, dict[str, Any]]:
    """The API's filters, one at a time, on the fleet's skew (bench/fleet.py)."""
    return {
        "none": {},
        "service=large-0": {"service_id": "large-0"},
        "service=small": {"service_id": "svc-00042"},
        "issuer=busiest": {"issuer": "services"},
        "issuer=rarest": {"issuer": "legacy"},
        "status=active": {"status": CertStatus.ACTIVE},
        "status=revoked": {"status": CertStatus.REVOKED},
        "status=expired": {"status": CertStatus.EXPIRED},
        "expiring<30d": {"expiring_before": now + 30 * DAY},
    }


def params(f: dict[str, Any]) -> dict[str, str]:
    out = {}
    for key, value in f.items():
        if isinstance(value, dt.datetime):
            out[key] = value.isoformat()
        elif isinstance(value, CertStatus):
            out[key] = value.value
        else:
            out[key] = str(value)
    return out


def deep_position(store: SqlStore, query: CertificateQuery) -> PagePosition | None:
    """The position of the row 80% of the way through `query`'s rows (OFFSET, once)."""
    with store.transaction(readonly=True) as tx:
        n = tx.certificates.count(replace(query, limit=1))
        if n < 2 * query.limit:
            return None
        stmt = SqlCertificateRepository.statement(replace(query, limit=1)).offset(n * 4 // 5)
        row = tx.certificates.c.execute(stmt).first()
        record = SqlCertificateRepository._domain(row)
    return PagePosition.after(record, order_of(query))


def before(store: SqlStore, query: CertificateQuery, offset: int) -> None:
    """The replaced listing: newest first by OFFSET, and an exact count, per page."""
    c = CertificateRow.__table__.c
    repo_filters = SqlCertificateRepository._filters(query)
    stmt = (
        SqlCertificateRepository.statement(replace(query, limit=query.limit))
        .order_by(None)
        .order_by(c.created_at.desc(), c.serial_number)
        .offset(offset)
    )
    with store.transaction(readonly=True) as tx:
        conn = tx.certificates.c
        list(conn.execute(stmt))
        conn.execute(select(func.count()).select_from(CertificateRow).where(*repo_filters))


def sizes(store: SqlStore) -> list[tuple[str, int]]:
    with store.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'public' AND (c.relname IN ('certificates', 'revocations') "
                "OR c.relname LIKE 'ix_certificates%' OR c.relname = 'certificates_pkey' "
                "OR c.relname LIKE 'certificates_%key') ORDER BY 2 DESC"
            )
        ).all()
        table = conn.execute(
            text("SELECT pg_relation_size('certificates'), pg_table_size('certificates')")
        ).one()
    return [("certificates: heap", int(table[0])), ("certificates: heap+toast", int(table[1]))] + [
        (str(name), int(size)) for name, size in rows
    ]


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) * 1000


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def prepare_server(home: Path, work: Path, url: str, env: dict[str, str]) -> dict[str, str]:
    """Whitelist an admin and issue its client certificate (the server makes its own)."""
    (home / "service_whitelist.yaml").write_text(WHITELIST)
    files = {"root": str(work / "root.pem")}
    cli = [sys.executable, "-m", "pkiforge.cli", "--home", str(home), "--database-url", url]
    root = subprocess.run([*cli, "ca", "chain", "root"], env=env, capture_output=True, text=True)
    Path(files["root"]).write_text(root.stdout)
    files["client_cert"], files["client_key"] = str(work / "admin.pem"), str(work / "admin.key")
    args = ["cert", "issue", "--cn", ADMIN, "--service", ADMIN, "--key-out", files["client_key"]]
    done = subprocess.run(
        [*cli, *args, "--out", files["client_cert"]], env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"cert issue: {done.stderr.strip()}")
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the filled PostgreSQL store's URL")
    parser.add_argument("--home", required=True, type=Path, help="its pkiforge home")
    parser.add_argument("--requests", type=int, default=200, help="per filter and depth")
    parser.add_argument("--before", type=int, default=5, help="OFFSET pages per filter")
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--skip-http", action="store_true")
    args = parser.parse_args()
    now = dt.datetime.now(dt.UTC)
    print(f"load average at start: {os.getloadavg()}")
    store = SqlStore.open(args.url)
    with store.engine.connect() as conn:
        estimate = conn.execute(
            text("SELECT reltuples::bigint FROM pg_class WHERE relname = 'certificates'")
        ).scalar_one()
        print(f"certificates (planner's estimate): {estimate:,}")
    for name, size in sizes(store):
        print(f"  {name:45} {size / 2**20:9.1f} MiB")

    cases: list[tuple[str, str, CertificateQuery]] = []
    for name, f in filters(now).items():
        first = CertificateQuery(now=now, limit=args.limit, **f)
        cases.append((name, "first", first))
        deep = deep_position(store, first)
        if deep is not None:
            cases.append((name, "deep", replace(first, after=deep)))

    store_ms: dict[tuple[str, str], list[float]] = {(n, d): [] for n, d, _ in cases}
    for _ in range(args.requests):
        for name, depth, query in cases:

            def page(q: CertificateQuery = query) -> None:
                with store.transaction(readonly=True) as tx:
                    read_page(tx.certificates, q)

            store_ms[(name, depth)].append(timed(page))

    before_ms: dict[tuple[str, str], list[float]] = {}
    for name, f in filters(now).items() if args.before else ():
        query = CertificateQuery(now=now, limit=args.limit, **f)
        with store.transaction(readonly=True) as tx:
            n = tx.certificates.count(query)
        for depth, offset in (("first", 0), ("deep", n * 4 // 5)):
            samples = before_ms[(name, depth)] = []
            for _ in range(args.before):
                started = time.perf_counter()
                before(store, query, offset)
                samples.append((time.perf_counter() - started) * 1000)

    print("store (and before) done; now over HTTP", flush=True)
    for name, depth, _ in cases:
        st, b = store_ms[(name, depth)], before_ms.get((name, depth))
        print(
            f"  {name:18} {depth:6} store p50 {pct(st, 0.5):7.1f} p99 {pct(st, 0.99):7.1f}"
            f"  before p50 {statistics.median(b) if b else float('nan'):9.1f}",
            flush=True,
        )
    http_ms: dict[tuple[str, str], list[float]] = {(n, d): [] for n, d, _ in cases}
    if not args.skip_http:
        passphrase = os.environ.get("PKIFORGE_CA_PASSPHRASE")
        if not passphrase:
            raise SystemExit("set PKIFORGE_CA_PASSPHRASE (the home's CA passphrase)")
        pg_url = args.url.replace("postgresql+psycopg://", "postgresql://")
        with tempfile.TemporaryDirectory() as tmp:
            env = {**os.environ, "PKIFORGE_DATABASE_URL": pg_url}
            files = prepare_server(args.home, Path(tmp), pg_url, env)
            port = free_port()
            serve = [sys.executable, "-m", "pkiforge.cli", "--home", str(args.home)]
            serve += ["--database-url", pg_url, "serve", "--port", str(port)]
            with process(serve, env=env):
                base = f"https://localhost:{port}"
                wait_ready(f"{base}/healthz", Path(files["root"]))
                tls = ssl.create_default_context(cafile=files["root"])
                tls.load_cert_chain(files["client_cert"], files["client_key"])
                with httpx.Client(base_url=base, verify=tls) as client:
                    for _ in range(args.requests):
                        for name, depth, query in cases:
                            p = params(filters(now)[name]) | {"limit": str(args.limit)}
                            if query.after is not None:
                                p["cursor"] = encode_cursor(query.after)

                            def get(p: dict[str, str] = p) -> None:
                                r = client.get("/api/v1/certificates", params=p)
                                r.raise_for_status()

                            http_ms[(name, depth)].append(timed(get))

    print(f"load average at end: {os.getloadavg()}")
    print(f"{args.requests} pages of {args.limit} per case (before: {args.before})")
    head = f"{'filter':18} {'page':6} {'store p50':>10} {'p99':>7} {'http p50':>9} {'p99':>7}"
    print(head + f" {'before p50':>11}")
    for name, depth, _ in cases:
        s, h, b = store_ms[(name, depth)], http_ms[(name, depth)], before_ms.get((name, depth))
        line = f"{name:18} {depth:6} {pct(s, 0.5):10.1f} {pct(s, 0.99):7.1f}"
        line += f" {pct(h, 0.5):9.1f} {pct(h, 0.99):7.1f}" if h else f" {'-':>9} {'-':>7}"
        print(line + (f" {statistics.median(b):11.1f}" if b else f" {'-':>11}"))
    store.close()


if __name__ == "__main__":
    main()
