"""Authentication bookkeeping: events and per-day counts, buffered off the request path.

Every signed request yields one `AuthEvent`. Writing it to the database inside the request
would put a write (and, on SQLite, the writer lock) on every call, so `UsageRecorder` keeps
events in memory and hands them to a `UsageSink` in batches: the events themselves, the
per-(key, day) success and failure counts, and each key's newest `last_used`. Bookkeeping
never fails a request: a sink that cannot write loses that batch and says so in the log.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from pkiforge.errors import PkiError

__all__ = ["AuthEvent", "DailyUsage", "UsageBatch", "UsageRecorder", "UsageSink"]

log = logging.getLogger("pkiforge.auth")


@dataclass(frozen=True, slots=True)
class AuthEvent:
    """One authentication attempt: which key (as claimed), from where, what, and the outcome."""

    at: dt.datetime
    key_id: str | None
    address: str | None
    method: str
    path: str
    outcome: str  # metrics.Outcome values: success, failure, blocked, unavailable
    reason: str | None = None
    known_key: bool = False  # the key id names a registered key (so its counts can be kept)


@dataclass(frozen=True, slots=True)
class DailyUsage:
    """Successes and failures of one key on one UTC day."""

    key_id: str
    day: dt.date
    successes: int
    failures: int


@dataclass(frozen=True, slots=True)
class UsageBatch:
    """What one flush writes."""

    events: Sequence[AuthEvent]
    counts: Mapping[tuple[str, dt.date], tuple[int, int]]  # (key, day) -> (successes, failures)
    last_used: Mapping[str, dt.datetime]


class UsageSink(Protocol):
    """Writes a batch in one transaction; raises `StoreUnavailable` when it cannot."""

    def write(self, batch: UsageBatch) -> None: ...


def summarise(events: Sequence[AuthEvent]) -> UsageBatch:
    """Aggregate events into counts per (key, day) and the newest success per key."""
    counts: dict[tuple[str, dt.date], tuple[int, int]] = {}
    last_used: dict[str, dt.datetime] = {}
    for event in events:
        if event.key_id is None or not event.known_key:
            continue
        if event.outcome not in ("success", "failure"):
            continue
        slot = (event.key_id, event.at.astimezone(dt.UTC).date())
        ok, bad = counts.get(slot, (0, 0))
        if event.outcome == "success":
            counts[slot] = (ok + 1, bad)
            if event.key_id not in last_used or last_used[event.key_id] < event.at:
                last_used[event.key_id] = event.at
        else:
            counts[slot] = (ok, bad + 1)
    return UsageBatch(events, counts, last_used)


class UsageRecorder:
    """Buffers events and writes them every `interval` seconds (or on `flush`)."""

    def __init__(
        self, sink: UsageSink, *, interval: float = 1.0, max_pending: int = 50_000
    ) -> None:
        self._sink = sink
        self._interval = interval
        self._max = max_pending
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._pending: list[AuthEvent] = []
        self._dropped = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def record(self, event: AuthEvent) -> None:
        """Queue one event; never blocks on the store."""
        with self._lock:
            if len(self._pending) >= self._max:
                self._dropped += 1
                return
            self._pending.append(event)

    def flush(self) -> int:
        """Write everything queued so far; return how many events were written."""
        with self._flush_lock:
            with self._lock:
                events, self._pending = self._pending, []
                dropped, self._dropped = self._dropped, 0
            if dropped:
                log.warning("auth bookkeeping: %d events dropped (queue full)", dropped)
            if not events:
                return 0
            try:
                self._sink.write(summarise(events))
            except PkiError as exc:
                log.warning("auth bookkeeping: %d events lost: %s", len(events), exc)
                return 0
            return len(events)

    def start(self) -> None:
        """Flush in a daemon thread every `interval` seconds until `close`."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="auth-usage", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.flush()

    def close(self) -> None:
        """Stop the thread and write what is left."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.flush()
