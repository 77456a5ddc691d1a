"""The audit trail's hash chain: each entry commits to the one before it.

hash = SHA-256 over the canonical JSON of (seq, at, actor, address, action, subject, details,
prev_hash). Editing an entry breaks its hash; inserting or deleting one breaks the sequence or
the link to its predecessor. `verify_chain` names the first entry where each problem shows.

A chain alone cannot show that its newest entries were removed, or that someone with write
access rewrote a suffix and recomputed every hash. An *anchor* (the head's seq and hash, kept
outside the database: a ticket, a log sink, WORM storage) closes that gap: verifying against it
proves that the entry at that seq still has that hash and that nothing before it changed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from pkiforge.ca.models import Actor, AuditEntry
from pkiforge.clock import utc

GENESIS = "0" * 64


def entry_hash(entry: AuditEntry) -> str:
    """The SHA-256 (hex) an entry must carry."""
    body = {
        "seq": entry.seq,
        "at": utc(entry.at).isoformat(timespec="microseconds"),
        "actor": entry.actor,
        "address": entry.address,
        "action": entry.action,
        "subject": entry.subject,
        "details": entry.details,
        "prev": entry.prev_hash,
    }
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class Link(Protocol):
    """What the next entry needs of the one before it (an `AuditHead` or an `AuditEntry`)."""

    @property
    def seq(self) -> int: ...
    @property
    def hash(self) -> str: ...


def next_entry(
    previous: Link | None,
    *,
    at: dt.datetime,
    actor: Actor,
    action: str,
    subject: str | None,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """The entry that follows `previous` (or starts the chain)."""
    clean = json.loads(json.dumps(details or {}, default=str))  # JSON-normal, as stored
    entry = AuditEntry(
        seq=(previous.seq + 1) if previous else 1,
        at=utc(at),
        actor=str(actor),
        address=actor.address,
        action=action,
        subject=subject,
        details=clean,
        prev_hash=previous.hash if previous else GENESIS,
    )
    return replace(entry, hash=entry_hash(entry))


@dataclass(frozen=True)
class Anchor:
    """A point of the chain recorded elsewhere."""

    seq: int
    hash: str


@dataclass
class ChainReport:
    """The outcome of `verify_chain`."""

    entries: int = 0
    problems: list[str] = field(default_factory=list)
    head: Anchor | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_chain(entries: Iterable[AuditEntry], anchors: Iterable[Anchor] = ()) -> ChainReport:
    """Walk the chain in sequence order and name every break, and every anchor not matched."""
    expected = {a.seq: a.hash for a in anchors}
    report = ChainReport()
    prev_seq, prev_hash = 0, GENESIS
    for entry in entries:
        report.entries += 1
        if entry.seq != prev_seq + 1:
            if entry.seq > prev_seq + 1:
                missing = (
                    f"{prev_seq + 1}"
                    if entry.seq == prev_seq + 2
                    else f"{prev_seq + 1}-{entry.seq - 1}"
                )
                report.problems.append(
                    f"entry {missing} missing before entry {entry.seq} (deleted)"
                )
            else:
                report.problems.append(f"entry {entry.seq} out of sequence after {prev_seq}")
        elif entry.prev_hash != prev_hash:
            report.problems.append(
                f"entry {entry.seq} does not link to entry {prev_seq} (inserted or replaced)"
            )
        if entry_hash(entry) != entry.hash:
            report.problems.append(f"entry {entry.seq} content does not match its hash (edited)")
        if entry.seq in expected and expected.pop(entry.seq) != entry.hash:
            report.problems.append(
                f"entry {entry.seq} differs from the anchor recorded for it (history rewritten)"
            )
        prev_seq, prev_hash = entry.seq, entry.hash
    for seq in sorted(expected):
        report.problems.append(
            f"anchored entry {seq} is missing (entries after {prev_seq} deleted)"
        )
    report.head = Anchor(prev_seq, prev_hash) if report.entries else None
    return report
