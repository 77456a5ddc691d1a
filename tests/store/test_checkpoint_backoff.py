"""The checkpointer under a lasting failure (a full disk): it backs off instead of retrying
every 0.1 s, logs the failure once plus a reminder now and then, and returns to its interval
once a round works again."""

from __future__ import annotations

import itertools
import logging
import sqlite3
from pathlib import Path

import pytest

from pkiforge.store.checkpoint import BACKOFF_CAP, INTERVAL, REMIND_EVERY, Backoff, Checkpoint
from pkiforge.store.checkpoint import WalCheckpointer as Checkpointer


class FakeStop:
    """Stands in for the thread's stop event: records each wait, advances a fake clock by
    it, and stops the loop after `rounds` waits."""

    def __init__(self, rounds: int) -> None:
        self.rounds = rounds
        self.waits: list[float] = []
        self.clock = 0.0

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        self.clock += seconds
        return len(self.waits) > self.rounds

    def set(self) -> None:
        pass


def _run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, outcomes: list[bool]
) -> tuple[list[float], list[logging.LogRecord]]:
    """Run the loop over rounds that fail (False) or work (True); the waits and log lines."""
    checkpointer = Checkpointer(str(tmp_path / "unused.db"))
    stop = FakeStop(len(outcomes))
    checkpointer._stop = stop  # type: ignore[assignment]
    checkpointer.backoff._monotonic = lambda: stop.clock
    rounds = iter(outcomes)

    def round_() -> Checkpoint:
        if not next(rounds):
            raise sqlite3.OperationalError("database or disk is full")
        return Checkpoint(0, 0, restarted=False)

    monkeypatch.setattr(checkpointer, "checkpoint", round_)
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("pkiforge.store")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        checkpointer._loop()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    return stop.waits, records


def test_failing_rounds_back_off_to_the_cap_and_a_working_one_returns_to_the_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    waits, _ = _run(tmp_path, monkeypatch, [False] * 12 + [True, True])
    # the first wait, then one after each round
    assert waits[0] == INTERVAL
    after_failures = waits[1:13]
    assert after_failures[:4] == pytest.approx([0.2, 0.4, 0.8, 1.6])
    assert all(b >= a for a, b in itertools.pairwise(after_failures))
    assert after_failures[-1] == BACKOFF_CAP
    assert waits[13:] == [INTERVAL, INTERVAL]


def test_a_lasting_failure_is_logged_once_then_reminded_and_its_end_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    failing = 60  # about 27 minutes of failed rounds at the cap
    waits, records = _run(tmp_path, monkeypatch, [False] * failing + [True])
    lines = [r.getMessage() for r in records]
    began = [m for m in lines if "WAL checkpoint failed" in m]
    reminders = [m for m in lines if "still failing" in m]
    ended = [m for m in lines if "works again after" in m]
    assert began == ["WAL checkpoint failed, retrying with backoff up to 30s: "
                     "database or disk is full"]  # fmt: skip
    elapsed = sum(waits[: failing + 1])
    assert 1 <= len(reminders) <= elapsed / REMIND_EVERY + 1
    assert ended == [f"WAL checkpoint works again after {failing} failed rounds"]
    assert len(lines) == len(began) + len(reminders) + len(ended)  # not a line per round


def test_the_wait_stays_at_the_cap_however_long_the_failure_lasts() -> None:
    backoff = Backoff(INTERVAL)
    waits = [backoff.failed("WAL checkpoint", "database or disk is full") for _ in range(3000)]
    assert waits[-1] == BACKOFF_CAP  # days of rounds at the cap: no overflow
