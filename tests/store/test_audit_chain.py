"""The audit hash chain: tampering done directly in the database is found and located."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from sqlalchemy import Connection, delete, insert, text, update

from pkiforge.actor import Actor
from pkiforge.ca.audit import GENESIS, entry_hash, next_entry, verify_chain
from pkiforge.store.db import SqlStore
from pkiforge.store.tables import AuditRow

from .helpers import NOW, append_audit

Tamper = Callable[[Connection, SqlStore], None]


def _edit_details(conn: Connection, store: SqlStore) -> None:
    conn.execute(update(AuditRow).where(AuditRow.seq == 3).values(details={"i": 99}))


def _edit_actor(conn: Connection, store: SqlStore) -> None:
    conn.execute(text("UPDATE audit_log SET actor = 'operator:mallory' WHERE seq = 3"))


def _edit_time(conn: Connection, store: SqlStore) -> None:
    conn.execute(update(AuditRow).where(AuditRow.seq == 4).values(at=NOW))


def _delete_one(conn: Connection, store: SqlStore) -> None:
    conn.execute(text("DELETE FROM audit_log WHERE seq = 3"))


def _delete_two(conn: Connection, store: SqlStore) -> None:
    conn.execute(delete(AuditRow).where(AuditRow.seq.in_([2, 3])))


def _delete_first(conn: Connection, store: SqlStore) -> None:
    conn.execute(text("DELETE FROM audit_log WHERE seq = 1"))


def _forged(seq: int, prev_hash: str) -> dict[str, object]:
    entry = next_entry(None, at=NOW, actor=Actor("operator", "mallory"), action="x", subject="y")
    entry = type(entry)(**{**entry.__dict__, "seq": seq, "prev_hash": prev_hash, "hash": ""})
    return {**entry.__dict__, "hash": entry_hash(entry)}


def _append_forged(conn: Connection, store: SqlStore) -> None:
    """A self-consistent entry whose link is made up."""
    conn.execute(insert(AuditRow).values(**_forged(6, "f" * 64)))


def _replace_forged(conn: Connection, store: SqlStore) -> None:
    """Entry 3 replaced by a forgery that links correctly to entry 2 (its hash is valid)."""
    prev = conn.execute(text("SELECT hash FROM audit_log WHERE seq = 2")).scalar_one()
    conn.execute(text("DELETE FROM audit_log WHERE seq = 3"))
    conn.execute(insert(AuditRow).values(**_forged(3, prev)))


def _insert_shifted(conn: Connection, store: SqlStore) -> None:
    """Entries 3.. moved up by one, a forgery slipped in as entry 3."""
    for seq in (5, 4, 3):
        conn.execute(text(f"UPDATE audit_log SET seq = {seq + 1} WHERE seq = {seq}"))
    prev = conn.execute(text("SELECT hash FROM audit_log WHERE seq = 2")).scalar_one()
    conn.execute(insert(AuditRow).values(**_forged(3, prev)))


def _swap(conn: Connection, store: SqlStore) -> None:
    """Entries 2 and 4 trade places (their seq numbers are swapped)."""
    conn.execute(text("UPDATE audit_log SET seq = -1 WHERE seq = 2"))
    conn.execute(text("UPDATE audit_log SET seq = 2 WHERE seq = 4"))
    conn.execute(text("UPDATE audit_log SET seq = 4 WHERE seq = -1"))


CASES: list[tuple[str, Tamper, list[str]]] = [
    ("edit-details", _edit_details, ["entry 3 content does not match its hash (edited)"]),
    ("edit-actor", _edit_actor, ["entry 3 content does not match its hash (edited)"]),
    ("edit-time", _edit_time, ["entry 4 content does not match its hash (edited)"]),
    ("delete-one", _delete_one, ["entry 3 missing before entry 4 (deleted)"]),
    ("delete-two", _delete_two, ["entry 2-3 missing before entry 4 (deleted)"]),
    ("delete-first", _delete_first, ["entry 1 missing before entry 2 (deleted)"]),
    (
        "append-forged",
        _append_forged,
        ["entry 6 does not link to entry 5 (inserted or replaced)"],
    ),
    (
        "replace-forged",
        _replace_forged,
        ["entry 4 does not link to entry 3 (inserted or replaced)"],
    ),
    (
        "insert-shifted",
        _insert_shifted,
        [
            "entry 4 does not link to entry 3 (inserted or replaced)",
            "entry 4 content does not match its hash (edited)",
            "entry 5 content does not match its hash (edited)",
            "entry 6 content does not match its hash (edited)",
        ],
    ),
    (
        "swap",
        _swap,
        [
            "entry 2 does not link to entry 1 (inserted or replaced)",
            "entry 2 content does not match its hash (edited)",
            "entry 3 does not link to entry 2 (inserted or replaced)",
            "entry 4 does not link to entry 3 (inserted or replaced)",
            "entry 4 content does not match its hash (edited)",
            "entry 5 does not link to entry 4 (inserted or replaced)",
        ],
    ),
]


@pytest.mark.parametrize(("tamper", "problems"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_tampering_is_found_at_the_right_entry(
    store: SqlStore, tamper: Tamper, problems: list[str]
) -> None:
    append_audit(store, 5)
    with store.transaction() as tx:
        assert verify_chain(tx.audit.iterate()).ok
    with store.engine.begin() as conn:
        tamper(conn, store)
    with store.transaction() as tx:
        report = verify_chain(tx.audit.iterate())
    assert not report.ok
    assert report.problems == problems


def test_intact_chain_verifies(store: SqlStore) -> None:
    written = append_audit(store, 4)
    with store.transaction() as tx:
        report = verify_chain(tx.audit.iterate())
    assert report.ok and report.entries == 4 and report.problems == []
    assert written[0].prev_hash == GENESIS
    assert [e.prev_hash for e in written[1:]] == [e.hash for e in written[:-1]]


@pytest.mark.parametrize("threads", [6])
def test_concurrent_appends_keep_one_unbroken_chain(store: SqlStore, threads: int) -> None:
    per_thread = 8
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def worker(n: int) -> None:
        try:
            start.wait()
            append_audit(store, per_thread, actor=f"thread-{n}")
        except BaseException as exc:
            errors.append(exc)

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=120)
    assert errors == []
    with store.transaction() as tx:
        entries = list(tx.audit.iterate())
    report = verify_chain(entries)
    assert report.ok, report.problems
    assert [e.seq for e in entries] == list(range(1, threads * per_thread + 1))
    actors = {e.actor for e in entries}
    assert actors == {f"operator:thread-{n}" for n in range(threads)}
