"""The scheduler core over the real lease store (SQLite and PostgreSQL), time from a
FixedClock: when a job is due, one holder at a time, takeover after expiry, renewal, and what
each run records."""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from pkiforge.clock import FixedClock
from pkiforge.errors import StoreUnavailable
from pkiforge.scheduler.core import Job, JobContext, LeasePolicy, Outcome, Scheduler
from pkiforge.scheduler.ports import RunRecord
from pkiforge.store.db import SqlStore
from pkiforge.store.scheduler_repos import SqlLeaseStore

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
LEASE = LeasePolicy(seconds=30, renew_every=0.05)


@pytest.fixture
def stores(store_url: str) -> Iterator[tuple[SqlStore, SqlStore]]:
    """Two stores on one database: two replicas' connection pools."""
    a, b = SqlStore.open(store_url), SqlStore.open(store_url)
    yield a, b
    a.close()
    b.close()


def counting(name: str, runs: Counter[str], interval: dt.timedelta = HOUR) -> Job:
    def run(_: JobContext) -> dict[str, Any]:
        runs[name] += 1
        return {"run": runs[name]}

    return Job(name, interval, run)


def test_a_job_runs_when_due_and_records_its_run(stores: tuple[SqlStore, SqlStore]) -> None:
    clock, runs = FixedClock(NOW), Counter[str]()
    scheduler = Scheduler([counting("a", runs)], SqlLeaseStore(stores[0]), clock, policy=LEASE)
    first = scheduler.run_due()
    assert [(r.job, r.outcome) for r in first] == [("a", Outcome.RAN)]
    clock.advance(HOUR - dt.timedelta(seconds=1))
    again = scheduler.run_due()
    assert again[0].outcome is Outcome.NOT_DUE and again[0].due_at == NOW + HOUR
    clock.advance(dt.timedelta(seconds=1))
    assert scheduler.run_due()[0].outcome is Outcome.RAN
    state = scheduler.leases.state("a")
    assert state is not None
    assert (state.runs, state.failures, state.last_error) == (2, 0, None)
    assert state.last_run_at == state.last_success_at == NOW + HOUR
    assert state.holder is None and state.lease_expires_at is None  # released
    assert dict(state.result) == {"run": 2}


def test_a_failed_run_is_counted_and_the_other_jobs_still_run(
    stores: tuple[SqlStore, SqlStore],
) -> None:
    clock, runs = FixedClock(NOW), Counter[str]()

    def broken(_: JobContext) -> dict[str, Any]:
        raise RuntimeError("disk on fire")

    scheduler = Scheduler(
        [Job("broken", HOUR, broken), counting("fine", runs)],
        SqlLeaseStore(stores[0]),
        clock,
        policy=LEASE,
    )
    reports = scheduler.run_due()
    assert [r.outcome for r in reports] == [Outcome.FAILED, Outcome.RAN]
    assert reports[0].error == "RuntimeError: disk on fire"
    assert isinstance(reports[0].exception, RuntimeError)
    state = scheduler.leases.state("broken")
    assert state is not None
    assert (state.runs, state.failures, state.last_success_at) == (1, 1, None)
    assert state.last_error == "RuntimeError: disk on fire"
    assert state.holder is None  # a failure releases the lease too


def test_two_replicas_run_each_job_once_per_due_time(
    stores: tuple[SqlStore, SqlStore],
) -> None:
    """Both replicas try every job at every due time at once: each runs exactly once."""
    clock, runs = FixedClock(NOW), Counter[str]()
    lock = threading.Lock()

    def jobs() -> list[Job]:
        def run_of(name: str) -> Job:
            def run(_: JobContext) -> dict[str, Any]:
                with lock:
                    runs[name] += 1
                return {}

            return Job(name, HOUR, run)

        return [run_of("crl"), run_of("scan"), run_of("tidy")]

    replicas = [Scheduler(jobs(), SqlLeaseStore(s), clock, policy=LEASE) for s in stores]
    rounds = 5
    for _ in range(rounds):
        start = threading.Barrier(2)
        outcomes: list[Outcome] = []
        threads = [threading.Thread(target=_together, args=(s, start, outcomes)) for s in replicas]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert Counter(outcomes)[Outcome.RAN] == 3, outcomes
        assert Outcome.FAILED not in outcomes
        clock.advance(HOUR)
    assert runs == {"crl": rounds, "scan": rounds, "tidy": rounds}


def _together(scheduler: Scheduler, start: threading.Barrier, outcomes: list[Outcome]) -> None:
    start.wait()
    outcomes.extend(r.outcome for r in scheduler.run_due())


def test_a_held_lease_is_taken_over_once_it_expires(stores: tuple[SqlStore, SqlStore]) -> None:
    """A holder that stopped renewing (it died) keeps the job for the rest of its lease."""
    clock, runs = FixedClock(NOW), Counter[str]()
    dead = SqlLeaseStore(stores[0])
    assert dead.acquire("a", "dead-holder", NOW, NOW + dt.timedelta(seconds=30))
    scheduler = Scheduler([counting("a", runs)], SqlLeaseStore(stores[1]), clock, policy=LEASE)
    held = scheduler.run_due()
    assert held[0].outcome is Outcome.HELD and runs["a"] == 0
    clock.advance(dt.timedelta(seconds=29))
    assert scheduler.run_due()[0].outcome is Outcome.HELD
    clock.advance(dt.timedelta(seconds=1))
    assert scheduler.run_due()[0].outcome is Outcome.RAN and runs["a"] == 1
    # the dead holder's late report changes nothing: the lease is no longer its own
    assert not dead.finish("a", "dead-holder", RunRecord(NOW, 1.0, None))
    assert not dead.renew("a", "dead-holder", NOW + HOUR)
    state = dead.state("a")
    assert state is not None and state.runs == 1


def test_the_holder_renews_its_lease_while_the_job_runs(
    stores: tuple[SqlStore, SqlStore],
) -> None:
    """A job running longer than the lease keeps it: the renewals move its expiry along."""
    clock = FixedClock(NOW)
    other = Scheduler([counting("slow", Counter())], SqlLeaseStore(stores[1]), clock, policy=LEASE)
    seen: list[Outcome] = []

    def slow(job: JobContext) -> dict[str, Any]:
        for _ in range(3):  # 60 s of clock time: twice the lease
            clock.advance(dt.timedelta(seconds=20))
            _wait_for_renewal(leases, clock.now())
            seen.append(other.run_due(force=True)[0].outcome)
            assert job.still_held()
        return {}

    leases = SqlLeaseStore(stores[0])
    scheduler = Scheduler([Job("slow", HOUR, slow)], leases, clock, policy=LEASE)
    assert scheduler.run_due()[0].outcome is Outcome.RAN
    assert seen == [Outcome.HELD] * 3


def _wait_for_renewal(leases: SqlLeaseStore, now: dt.datetime) -> None:
    """Until the lease runs to `now` + 30 s (the keeper renews every 0.05 s)."""
    done = threading.Event()
    for _ in range(600):
        state = leases.state("slow")
        if state and state.lease_expires_at and state.lease_expires_at >= now + LEASE_SPAN:
            done.set()
            break
        done.wait(0.05)
    assert done.is_set(), "the lease was not renewed within 30 s"


LEASE_SPAN = dt.timedelta(seconds=LEASE.seconds)


def test_a_job_that_loses_its_lease_is_told_and_its_run_fails(
    stores: tuple[SqlStore, SqlStore],
) -> None:
    clock = FixedClock(NOW)
    leases, thief = SqlLeaseStore(stores[0]), SqlLeaseStore(stores[1])
    noticed = threading.Event()

    def long(job: JobContext) -> dict[str, Any]:
        clock.advance(dt.timedelta(minutes=5))  # the keeper could not renew in time
        assert thief.acquire("long", "thief", clock.now(), clock.now() + LEASE_SPAN)
        for _ in range(600):
            if not job.still_held():
                noticed.set()
                break
            noticed.wait(0.05)
        return {}

    report = Scheduler([Job("long", HOUR, long)], leases, clock, policy=LEASE).run_due()[0]
    assert noticed.is_set()
    assert report.outcome is Outcome.FAILED and report.error is not None
    assert "lease was lost" in report.error
    state = leases.state("long")
    assert state is not None and state.holder == "thief" and state.runs == 0


def test_a_store_that_cannot_answer_fails_the_pass_without_raising() -> None:
    class Down:
        def state(self, job: str) -> None:
            raise StoreUnavailable("database unavailable: connection refused")

    scheduler = Scheduler(
        [counting("a", Counter())],
        Down(),  # type: ignore[arg-type]
        FixedClock(NOW),
        policy=LEASE,
    )
    report = scheduler.run_due()[0]
    assert report.outcome is Outcome.FAILED
    assert report.error == "database unavailable: connection refused"


@pytest.mark.parametrize(
    ("seconds", "renew"), [(30, 30), (30, 45), (30, 0)], ids=["equal", "longer", "zero"]
)
def test_a_lease_renewed_less_often_than_it_lasts_is_refused(seconds: float, renew: float) -> None:
    with pytest.raises(ValueError, match="renewed more often"):
        LeasePolicy(seconds, renew)


def test_job_names_are_unique() -> None:
    with pytest.raises(ValueError, match="unique"):
        Scheduler(
            [counting("a", Counter()), counting("a", Counter())],
            None,  # type: ignore[arg-type]
            FixedClock(NOW),
        )
