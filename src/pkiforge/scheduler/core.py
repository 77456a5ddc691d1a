"""When a job is due, and running it under its lease.

A job is due `interval` after its last run began (at once before its first). To run it, a
process takes the job's lease in the store, reads the job's state again (another process may
have run it since this one looked) and runs it only if it is still due; while it runs a
thread renews the lease every `renew_every` seconds, and the run is recorded as the lease is
released. A holder that dies stops renewing: its lease runs out after `seconds` and the next
process that finds the job due takes it over.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pkiforge.clock import Clock
from pkiforge.errors import PkiError
from pkiforge.scheduler.ports import JobState, LeaseStore, RunRecord

log = logging.getLogger("pkiforge.scheduler")


def holder_id() -> str:
    """Who holds a lease: this host and process, and a random part (a pid can be reused)."""
    return f"{socket.gethostname()[:80]}/{os.getpid()}/{secrets.token_hex(4)}"


@dataclass(frozen=True)
class LeasePolicy:
    """How long a lease lasts without renewal, and how often its holder renews it."""

    seconds: float = 30.0
    renew_every: float = 10.0

    def __post_init__(self) -> None:
        if not 0 < self.renew_every < self.seconds:
            raise ValueError("a lease must be renewed more often than it lasts")


class JobContext:
    """What a running job may ask: the time, and whether its lease is still held (a job with
    several steps checks between them, and stops once another process has taken over)."""

    def __init__(self, clock: Clock, lost: threading.Event) -> None:
        self.clock = clock
        self._lost = lost

    def still_held(self) -> bool:
        return not self._lost.is_set()


JobResult = Mapping[str, Any]


@dataclass(frozen=True)
class Job:
    """A named piece of work run every `interval`; `run` returns what it found or changed
    (plain JSON values: it is stored with the job and shown by `scheduler status`)."""

    name: str
    interval: dt.timedelta
    run: Callable[[JobContext], JobResult]


class Outcome(StrEnum):
    RAN = "ran"
    FAILED = "failed"
    NOT_DUE = "not-due"
    HELD = "held"  # another process holds the lease: it is running the job


@dataclass(frozen=True)
class JobReport:
    """What happened to one job in one pass."""

    job: str
    outcome: Outcome
    due_at: dt.datetime | None = None
    duration: float | None = None
    error: str | None = None
    result: Mapping[str, Any] = field(default_factory=dict, hash=False)
    # what made it fail, for the caller to classify (the CLI's exit code); never stored
    exception: BaseException | None = field(default=None, compare=False, repr=False)


def due_at(job: Job, state: JobState | None) -> dt.datetime | None:
    """When `job` is next due; None: now (it never ran)."""
    if state is None or state.last_run_at is None:
        return None
    return state.last_run_at + job.interval


def describe(exc: BaseException) -> str:
    """A failure as stored and shown: our errors' own message, else the exception's type
    and message."""
    if isinstance(exc, PkiError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class Scheduler:
    """Runs the due jobs, each under its lease; safe to run in any number of processes."""

    def __init__(
        self,
        jobs: Sequence[Job],
        leases: LeaseStore,
        clock: Clock,
        *,
        policy: LeasePolicy | None = None,
        holder: str | None = None,
        on_failure: Callable[[str, str], None] | None = None,
    ) -> None:
        names = [job.name for job in jobs]
        if len(set(names)) != len(names):
            raise ValueError(f"job names must be unique: {names}")
        self.jobs = tuple(jobs)
        self.leases = leases
        self.clock = clock
        self.policy = policy or LeasePolicy()
        self.holder = holder or holder_id()
        # told (job name, error) when a job that ran fails, e.g. to notify someone
        self.on_failure = on_failure

    def job(self, name: str) -> Job:
        """Raises KeyError: no job of that name."""
        for job in self.jobs:
            if job.name == name:
                return job
        raise KeyError(name)

    def run_due(
        self,
        only: Collection[str] | None = None,
        *,
        force: bool = False,
        on_start: Callable[[Job], None] | None = None,
    ) -> list[JobReport]:
        """One pass: each job (of `only`, if given) that is due, or all with `force`."""
        reports = []
        for job in self.jobs:
            if only is not None and job.name not in only:
                continue
            reports.append(self.run_job(job, force=force, on_start=on_start))
        return reports

    def run_job(
        self, job: Job, *, force: bool = False, on_start: Callable[[Job], None] | None = None
    ) -> JobReport:
        """Run `job` if it is due (or `force`) and no other process holds its lease.

        A store that cannot answer makes a FAILED report, never an exception.
        """
        try:
            now = self.clock.now()
            state = self.leases.state(job.name)
            if not force and not self._due(job, state, now):
                return JobReport(job.name, Outcome.NOT_DUE, due_at(job, state))
            if not self.leases.acquire(job.name, self.holder, now, self._until()):
                return JobReport(job.name, Outcome.HELD, due_at(job, state))
        except PkiError as exc:
            log.warning("scheduler: job %s not checked: %s", job.name, exc)
            return JobReport(job.name, Outcome.FAILED, error=describe(exc), exception=exc)
        try:
            # another process may have run it between the read above and taking the lease
            state = self.leases.state(job.name)
            if not force and not self._due(job, state, now):
                self.leases.release(job.name, self.holder)
                return JobReport(job.name, Outcome.NOT_DUE, due_at(job, state))
            if on_start is not None:
                on_start(job)
            return self._run_leased(job)
        except PkiError as exc:
            log.warning("scheduler: job %s: %s", job.name, exc)
            return JobReport(job.name, Outcome.FAILED, error=describe(exc), exception=exc)
        except BaseException:
            self._release_quietly(job)
            raise

    def _due(self, job: Job, state: JobState | None, now: dt.datetime) -> bool:
        due = due_at(job, state)
        return due is None or now >= due

    def _until(self) -> dt.datetime:
        return self.clock.now() + dt.timedelta(seconds=self.policy.seconds)

    def _run_leased(self, job: Job) -> JobReport:
        started_at = self.clock.now()
        lost, stop = threading.Event(), threading.Event()
        keeper = threading.Thread(
            target=self._keep, args=(job.name, lost, stop), name=f"lease-{job.name}", daemon=True
        )
        keeper.start()
        began = time.monotonic()
        error: str | None = None
        failure: Exception | None = None
        result: JobResult = {}
        try:
            result = dict(job.run(JobContext(self.clock, lost)))
        except Exception as exc:
            error, failure = describe(exc), exc
            log.error("scheduler: job %s failed: %s", job.name, error, exc_info=True)
        finally:
            stop.set()
            keeper.join()
        duration = time.monotonic() - began
        if not self.leases.finish(
            job.name, self.holder, RunRecord(started_at, duration, error, result)
        ):
            error = error or "the lease was lost while the job ran: another process took over"
            log.error("scheduler: job %s: %s", job.name, error)
        outcome = Outcome.FAILED if error else Outcome.RAN
        if error and self.on_failure is not None:
            self.on_failure(job.name, error)
        return JobReport(job.name, outcome, None, duration, error, result, failure)

    def _keep(self, name: str, lost: threading.Event, stop: threading.Event) -> None:
        """Renew the lease until told to stop; mark it lost when another holder has it."""
        while not stop.wait(self.policy.renew_every):
            try:
                if not self.leases.renew(name, self.holder, self._until()):
                    lost.set()
                    log.error("scheduler: lease of job %s lost to another process", name)
                    return
            except PkiError as exc:  # try again at the next turn, while the lease lasts
                log.warning("scheduler: lease of job %s not renewed: %s", name, exc)

    def _release_quietly(self, job: Job) -> None:
        with contextlib.suppress(PkiError):  # else the lease runs out by itself
            self.leases.release(job.name, self.holder)

    async def run_forever(self, tick: float) -> None:
        """Check the jobs every `tick` seconds until cancelled (in the app's event loop: the
        jobs run in a thread, the loop goes on serving)."""
        while True:
            try:
                await asyncio.to_thread(self.run_due)
            except Exception:  # never let the loop die: the next pass tries again
                log.exception("scheduler: pass failed")
            await asyncio.sleep(tick)
