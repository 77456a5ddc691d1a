"""What the scheduler needs from storage: a lease per job, and the record of its runs."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class JobState:
    """A job's row: who holds its lease until when, and how its last run went."""

    name: str
    holder: str | None = None
    lease_expires_at: dt.datetime | None = None
    last_run_at: dt.datetime | None = None
    last_success_at: dt.datetime | None = None
    last_error: str | None = None
    last_duration: float | None = None  # seconds
    runs: int = 0
    failures: int = 0
    result: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def held(self, now: dt.datetime) -> bool:
        """Someone holds the lease at `now`."""
        return (
            self.holder is not None
            and self.lease_expires_at is not None
            and (now < self.lease_expires_at)
        )


@dataclass(frozen=True)
class RunRecord:
    """How one run went, stored with the job when its holder releases the lease."""

    started_at: dt.datetime
    duration: float  # seconds
    error: str | None
    result: Mapping[str, Any] = field(default_factory=dict, hash=False)


class LeaseStore(Protocol):
    """One lease per job, granted to one holder at a time; every method is one transaction.

    Raises (every method): StoreUnavailable.
    """

    def acquire(self, job: str, holder: str, now: dt.datetime, until: dt.datetime) -> bool:
        """Take the lease until `until` if nobody holds it at `now` (or `holder` does)."""

    def renew(self, job: str, holder: str, until: dt.datetime) -> bool:
        """Extend the lease `holder` still has; False when another has taken it."""

    def finish(self, job: str, holder: str, record: RunRecord) -> bool:
        """Record the run and release the lease, if `holder` still has it."""

    def release(self, job: str, holder: str) -> None:
        """Give the lease up without recording a run."""

    def state(self, job: str) -> JobState | None:
        """The job's row; None before its first lease."""

    def states(self) -> list[JobState]:
        """Every job's row, by name."""
