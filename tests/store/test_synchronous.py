"""`sqlite_synchronous`: every connection a store hands out syncs as configured."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from pkiforge.errors import InvalidInput
from pkiforge.settings import load_settings
from pkiforge.store.db import SqlStore
from pkiforge.wiring import build_pki

# PRAGMA synchronous reads back as a number: 1 NORMAL, 2 FULL
LEVELS = {"normal": 1, "full": 2}


def _levels(store: SqlStore, transactions: int = 3) -> set[int]:
    """The synchronous level of the connections behind several transactions, reads included."""
    seen = set()
    for i in range(transactions):
        with store.transaction(readonly=i % 2 == 1) as tx:
            seen.add(int(tx.conn.execute(text("PRAGMA synchronous")).scalar_one()))
    return seen


@pytest.mark.parametrize("level", ["normal", "full"])
def test_a_store_syncs_as_asked(tmp_path: Path, level: str) -> None:
    store = SqlStore.open(f"sqlite:///{tmp_path / 'pkiforge.db'}", synchronous=level)  # type: ignore[arg-type]
    try:
        assert _levels(store) == {LEVELS[level]}
    finally:
        store.close()


def test_an_unknown_level_is_refused_before_anything_is_opened(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as info:
        SqlStore.open(f"sqlite:///{tmp_path / 'pkiforge.db'}", synchronous="off")  # type: ignore[arg-type]
    assert info.value.field == "sqlite_synchronous"
    assert not (tmp_path / "pkiforge.db").exists()


def test_full_from_the_config_file_syncs_the_wal_after_each_write(tmp_path: Path) -> None:
    # the connections commit without syncing; the store syncs the WAL before a write returns
    (tmp_path / "config.yaml").write_text("sqlite_synchronous: full\n")
    pki = build_pki(load_settings(tmp_path), b"unused")
    try:
        assert _levels(pki.store) == {LEVELS["normal"]}
        assert pki.store.durable is not None
        assert pki.store.durable.path == str(tmp_path / "pkiforge.db-wal")
    finally:
        pki.store.close()


def test_normal_from_the_config_file_waits_for_no_sync(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("sqlite_synchronous: normal\n")
    pki = build_pki(load_settings(tmp_path), b"unused")
    try:
        assert _levels(pki.store) == {LEVELS["normal"]} and pki.store.durable is None
    finally:
        pki.store.close()


def test_the_server_syncs_as_the_cli_does_with_no_middleware(tmp_path: Path) -> None:
    # ServingApp is what each `serve` process runs; look at it from a fresh process so that
    # nothing of this one's configuration leaks in
    code = (
        "import os\n"
        "from pathlib import Path\n"
        "from sqlalchemy import text\n"
        "from pkiforge.settings import load_settings\n"
        "from pkiforge.wiring import ServingApp\n"
        "app = ServingApp(load_settings(Path(os.environ['PKIFORGE_HOME'])))()\n"
        "print(sorted(m.cls.__name__ for m in app.user_middleware))\n"
        "store = app.state.pkiforge.pki.store\n"
        "with store.transaction() as tx:\n"
        "    print(tx.conn.execute(text('PRAGMA synchronous')).scalar_one())\n"
        "print(store.durable is not None)\n"
    )
    env = {**os.environ, "PKIFORGE_HOME": str(tmp_path), "PKIFORGE_CA_PASSPHRASE": "unused"}

    def served(level: str) -> list[str]:
        out = subprocess.run(
            [sys.executable, "-c", code],
            env={**env, "PKIFORGE_SQLITE_SYNCHRONOUS": level},
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.split("\n")[:3]

    full, normal = served("full"), served("normal")
    assert full[0] == normal[0] and "Durable" not in full[0]  # the guarantee is the store's
    assert full[1:] == [str(LEVELS["normal"]), "True"]
    assert normal[1:] == [str(LEVELS["normal"]), "False"]
