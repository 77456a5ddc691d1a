"""`pkiforge cert list` pages through a fleet with `--cursor`: `--expiring-within 30d` lists
each expiring certificate once, soonest first; a bad cursor is a usage error naming it."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from bench.fleet import insert_fleet
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import Engine

from pkiforge.store.db import SqlStore
from tests.ca.helpers import make_pki
from tests.store.helpers import certificate

from .conftest import make_runner

MARGIN = dt.timedelta(minutes=10)  # rows this near a window's edge may fall either side


def _cursor(stderr: str) -> str | None:
    lines = [x for x in stderr.splitlines() if x.startswith("next page: --cursor ")]
    return lines[-1].removeprefix("next page: --cursor ").strip() if lines else None


def test_expiring_within_pages_with_a_cursor(tmp_path: Path) -> None:
    home = tmp_path / "home"
    pki = make_pki(home)
    now = dt.datetime.now(dt.UTC)  # the CLI reads the system clock
    try:
        store = pki.ctx.store
        assert isinstance(store, SqlStore)
        engine: Engine = store.engine
        pem = certificate().public_bytes(Encoding.PEM).decode()
        with engine.begin() as conn:
            rows = insert_fleet(conn, 300, now, seed=3, pems=[pem])
    finally:
        pki.close()
    pkiforge = make_runner(home, tmp_path)

    def due(r: dict[str, Any], edge: dt.timedelta) -> bool:
        after = r["not_after"]
        return (
            r["status"] == "active"
            and after is not None
            and now + edge < after <= now + dt.timedelta(days=30) - edge
        )

    surely = {r["serial_number"] for r in rows if due(r, MARGIN)}
    maybe = {r["serial_number"] for r in rows if due(r, -MARGIN)}
    assert len(surely) > 60  # several pages of 25

    listed: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        args = ["cert", "list", "--expiring-within", "30d", "--limit", "25", "--json"]
        result = pkiforge(*args, *(["--cursor", cursor] if cursor else []))
        assert result.code == 0, result.stderr
        listed += json.loads(result.stdout)
        cursor = _cursor(result.stderr)
        if cursor is None:
            break
    serials = [c["serial"] for c in listed]
    assert len(serials) == len(set(serials))
    assert surely <= set(serials) <= maybe
    expiries = [c["not_after"] for c in listed]
    assert expiries == sorted(expiries)  # soonest first

    table = pkiforge("cert", "list", "--expiring-within", "30d", "--limit", "25")
    assert table.code == 0, table.stderr
    assert f"25 of {len(serials):,} certificates" in table.stdout, table.stdout
    assert _cursor(table.stderr) is not None

    # a cursor of another listing (newest first), and one that is not a cursor at all
    newest = pkiforge("cert", "list", "--limit", "1", "--json")
    other = _cursor(newest.stderr)
    assert other is not None
    for bad in (other, "nonsense"):
        refused = pkiforge("cert", "list", "--expiring-within", "30d", "--cursor", bad)
        assert refused.code != 0 and "cursor" in refused.stderr, refused.stderr
        assert refused.stdout == ""
