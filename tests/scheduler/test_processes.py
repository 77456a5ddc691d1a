"""The scheduler in real processes: a holder killed with SIGKILL is taken over once its lease
runs out; two processes on PostgreSQL run each due job once; `scheduler run --once` names a
failed job in its exit; `pkiforge serve` runs the jobs and /metrics shows them."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pkiforge.store.db import SqlStore
from pkiforge.store.scheduler_repos import SqlLeaseStore
from tests.api.server import Home, env, make_home, start_server
from tests.conftest import _empty_postgres

LEASE = {"scheduler": {"lease": 5, "lease_renew": 0.5}}

# a process that takes the `tidy` lease with the real scheduler and store, and blocks in the job
BLOCKER = """
import datetime as dt, sys, threading
from pkiforge.clock import SystemClock
from pkiforge.scheduler.core import Job, LeasePolicy, Scheduler
from pkiforge.store.db import SqlStore
from pkiforge.store.scheduler_repos import SqlLeaseStore

def block(job):
    print("running", flush=True)
    threading.Event().wait()

store = SqlStore.open(sys.argv[1])
jobs = [Job("tidy", dt.timedelta(days=1), block)]
Scheduler(jobs, SqlLeaseStore(store), SystemClock(), policy=LeasePolicy(5, 0.5)).run_due()
"""


def run_once(home: Home, *args: str) -> tuple[int, list[dict[str, Any]], str]:
    proc = home.cli("scheduler", "run", "--once", "--json", *args, check=False)
    return proc.returncode, json.loads(proc.stdout or "[]"), proc.stderr


def outcomes(reports: list[dict[str, Any]]) -> dict[str, str]:
    return {r["job"]: r["outcome"] for r in reports}


def wait_until(predicate: Any, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"not within {seconds} s: {what}")


@pytest.mark.slow
def test_a_holder_killed_with_sigkill_is_taken_over_after_its_lease(tmp_path: Path) -> None:
    home = make_home(tmp_path / "home", {"services": []}, LEASE)
    url = f"sqlite:///{home.path / 'pkiforge.db'}"
    store = SqlStore.open(url)
    leases = SqlLeaseStore(store)
    blocker = subprocess.Popen(
        [sys.executable, "-c", BLOCKER, url], env=env(), stdout=subprocess.PIPE, text=True
    )
    try:
        assert blocker.stdout is not None and blocker.stdout.readline() == "running\n"
        held = leases.state("tidy")
        assert held is not None and held.holder is not None
        assert held.holder.split("/")[1] == str(blocker.pid)
        # alive, it renews: the expiry moves on
        wait_until(
            lambda: (
                (s := leases.state("tidy")) is not None
                and s.lease_expires_at is not None
                and held.lease_expires_at is not None
                and s.lease_expires_at > held.lease_expires_at
            ),
            "the holder renewed its lease",
        )
        # while it lives and past its first lease, another process leaves the job to it
        time.sleep(5.5)
        code, reports, _ = run_once(home, "--job", "tidy")
        assert (code, outcomes(reports)) == (0, {"tidy": "held"})
        blocker.send_signal(signal.SIGKILL)
        blocker.wait(10)
        dead = leases.state("tidy")
        assert dead is not None and dead.runs == 0 and dead.lease_expires_at is not None
        code, reports, _ = run_once(home, "--job", "tidy")
        if outcomes(reports) == {"tidy": "held"}:  # its lease still runs: wait it out
            state = leases.state("tidy")
            assert state is not None and state.runs == 0 and state.holder == dead.holder
            assert state.lease_expires_at is not None
            wait_until(
                lambda: dt.datetime.now(dt.UTC) > state.lease_expires_at,  # type: ignore[operator]
                "the dead holder's lease ran out",
            )
            code, reports, _ = run_once(home, "--job", "tidy")
        assert (code, outcomes(reports)) == (0, {"tidy": "ran"})
        state = leases.state("tidy")
        assert state is not None and state.runs == 1 and state.holder is None
        # taken over only once the dead holder's lease had run out, never before
        assert state.last_run_at is not None and state.last_run_at >= dead.lease_expires_at
    finally:
        if blocker.poll() is None:
            blocker.kill()
            blocker.wait(10)
        store.close()


@pytest.mark.slow
@pytest.mark.postgres
def test_two_processes_on_postgresql_run_each_job_once(tmp_path: Path, postgres_url: str) -> None:
    _empty_postgres(postgres_url)
    home = make_home(tmp_path / "home", {"services": []}, None, postgres_url)
    cmd = [
        sys.executable, "-m", "pkiforge.cli", "--home", str(home.path),
        "--database-url", postgres_url, "scheduler", "run", "--once", "--json",
    ]  # fmt: skip
    procs = [
        subprocess.Popen(cmd, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    seen = [outcomes(json.loads(out)) for out, _ in results]
    for job in ("crl-refresh", "ocsp-refresh", "expiry-scan", "ca-expiry", "tidy", "notify"):
        ran = [s[job] for s in seen].count("ran")
        assert ran == 1, (job, seen)
        assert {s[job] for s in seen} <= {"ran", "held", "not-due"}
    store = SqlStore.open(postgres_url)
    try:
        assert {s.name: s.runs for s in SqlLeaseStore(store).states()} == {
            "crl-refresh": 1,
            "ocsp-refresh": 1,
            "expiry-scan": 1,
            "ca-expiry": 1,
            "tidy": 1,
            "notify": 1,
        }
        with store.transaction(readonly=True) as tx:
            signed = [e.subject for e in tx.audit.recent(100, action="crl.generate")]
        assert sorted(signed) == ["root", "services"]  # one CRL each, not two
    finally:
        store.close()


@pytest.mark.slow
def test_once_exits_non_zero_naming_the_failed_job(tmp_path: Path) -> None:
    """With the wrong CA passphrase the CRL and OCSP jobs cannot sign: exit 6 (refused), named; the
    other jobs still ran and the failure is recorded for `scheduler status`."""
    home = make_home(tmp_path / "home", {"services": []})
    proc = subprocess.run(
        [sys.executable, "-m", "pkiforge.cli", "--home", str(home.path),
         "scheduler", "run", "--once"],
        env=env({"PKIFORGE_CA_PASSPHRASE": "not-the-passphrase-000000"}),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 6, proc.stderr
    assert "error: job crl-refresh, ocsp-refresh failed:" in proc.stderr
    assert "expiry-scan: ran" in proc.stderr and "tidy: ran" in proc.stderr
    status = json.loads(home.cli("scheduler", "status", "--json").stdout)
    crl = next(s for s in status if s["job"] == "crl-refresh")
    assert crl["failures"] == 1 and crl["last_error"] and crl["last_success"] is None
    # a failed run counts as a run: the job is due again after its interval, not at once
    code, reports, _ = run_once(home)
    assert code == 0 and outcomes(reports)["crl-refresh"] == "not-due"


@pytest.mark.slow
def test_serve_runs_the_jobs_and_metrics_show_them(tmp_path: Path) -> None:
    home = make_home(tmp_path / "home", {"services": []}, {"scheduler": {"tick": 1}})
    server = start_server(home)
    try:

        def scraped() -> str:
            with server.client() as c:
                return c.get("/metrics").text

        wait_until(
            lambda: 'pkiforge_scheduler_job_runs_total{job="tidy"} 1.0' in scraped(),
            "the server ran its jobs",
        )
        text = scraped()
        for job in ("crl-refresh", "expiry-scan", "tidy"):
            assert f'pkiforge_scheduler_job_last_run_timestamp_seconds{{job="{job}"}}' in text
            assert f'pkiforge_scheduler_job_failures_total{{job="{job}"}} 0.0' in text
            assert f'pkiforge_scheduler_job_duration_seconds{{job="{job}"}}' in text
        signed = home.cli("audit", "list", "--json").stdout
        assert sum(1 for e in json.loads(signed) if e["action"] == "crl.generate") == 2
    finally:
        server.stop()
    assert os.path.exists(server.log)
