"""`pkiforge scheduler ...`: run the scheduled jobs from cron or a timer, and show their state."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import typer

from pkiforge.cli.output import (
    INTERRUPTED,
    OK,
    UNEXPECTED,
    USAGE,
    emit_json,
    err,
    exit_code,
    fail,
    table,
    when,
)
from pkiforge.cli.state import CliState
from pkiforge.errors import PkiError
from pkiforge.scheduler.core import Job, JobReport, Outcome, Scheduler, due_at
from pkiforge.scheduler.ports import JobState

app = typer.Typer(
    help="The jobs pkiforge runs by itself (CRLs, expiry scan, tidy).", no_args_is_help=True
)


def _scheduler(state: CliState) -> Scheduler:
    from pkiforge.wiring import build_scheduler

    return build_scheduler(state.settings, state.pki)


def _chosen(scheduler: Scheduler, names: list[str] | None) -> list[str] | None:
    known = [job.name for job in scheduler.jobs]
    for name in names or ():
        if name not in known:
            raise fail(f"no job named {name!r}: the jobs are {', '.join(known)}", USAGE)
    return names or None


def _report_json(report: JobReport) -> dict[str, Any]:
    return {
        "job": report.job,
        "outcome": report.outcome.value,
        "due_at": report.due_at,
        "duration": report.duration,
        "error": report.error,
        "result": dict(report.result),
    }


def _line(report: JobReport) -> str:
    if report.outcome is Outcome.RAN:
        return f"{report.job}: ran in {report.duration or 0:.2f} s {_summary(report.result)}"
    if report.outcome is Outcome.FAILED:
        return f"{report.job}: FAILED: {report.error}"
    if report.outcome is Outcome.HELD:
        return f"{report.job}: running in another process (it holds the lease)"
    return f"{report.job}: not due until {when(report.due_at)}"


def _summary(result: Any) -> str:
    shown = {k: v for k, v in dict(result).items() if v not in ([], {}, None) and k != "scanned_at"}
    return f"({', '.join(f'{k}={v}' for k, v in shown.items())})" if shown else ""


@app.command("run")
def run(
    ctx: typer.Context,
    once: Annotated[
        bool, typer.Option("--once", help="One pass over the due jobs, then exit (cron, timers).")
    ] = False,
    jobs: Annotated[
        list[str] | None, typer.Option("--job", help="Only this job (repeat for several).")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Run the jobs even if they are not due.")
    ] = False,
    json_out: Annotated[
        bool, typer.Option("--json", help="The pass as JSON (with --once).")
    ] = False,
) -> None:
    """Run the due jobs, each under its lease: with --once one pass, exiting non-zero if a job
    failed; without, a pass every scheduler.tick until interrupted."""
    state: CliState = ctx.obj
    scheduler = _scheduler(state)
    only = _chosen(scheduler, jobs)
    if not once:
        _forever(scheduler, state.settings.scheduler.tick.total_seconds())
        return

    def started(job: Job) -> None:
        if not json_out:
            err.print(f"{job.name}: running...")

    reports = []
    for job in scheduler.jobs:
        if only is None or job.name in only:
            reports.append(scheduler.run_job(job, force=force, on_start=started))
            if not json_out:
                err.print(_line(reports[-1]), markup=False)
    if json_out:
        emit_json([_report_json(r) for r in reports])
    failed = [r for r in reports if r.outcome is Outcome.FAILED]
    if failed:
        first = failed[0].exception
        code = exit_code(first) if isinstance(first, PkiError) else UNEXPECTED
        fail(f"job {', '.join(r.job for r in failed)} failed: {failed[0].error}")
        raise typer.Exit(code)
    raise typer.Exit(OK)


def _forever(scheduler: Scheduler, tick: float) -> None:
    err.print(f"scheduler running as {scheduler.holder} (a pass every {tick:g} s); stop: Ctrl-C")

    async def loop() -> None:
        while True:
            for report in await asyncio.to_thread(scheduler.run_due):
                if report.outcome in (Outcome.RAN, Outcome.FAILED):
                    err.print(_line(report), markup=False)
            await asyncio.sleep(tick)

    try:
        asyncio.run(loop())
    except KeyboardInterrupt:
        raise typer.Exit(INTERRUPTED) from None


def _state_json(job: Job, s: JobState | None) -> dict[str, Any]:
    s = s or JobState(job.name)
    return {
        "job": job.name,
        "interval_seconds": job.interval.total_seconds(),
        "next_due": due_at(job, s),
        "last_run": s.last_run_at,
        "last_success": s.last_success_at,
        "last_duration": s.last_duration,
        "last_error": s.last_error,
        "runs": s.runs,
        "failures": s.failures,
        "holder": s.holder,
        "lease_expires_at": s.lease_expires_at,
        "result": dict(s.result),
    }


@app.command("status")
def status(ctx: typer.Context, json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Each job: when it last ran, how it went, when it is due, who runs it now."""
    scheduler = _scheduler(ctx.obj)
    states = {s.name: s for s in scheduler.leases.states()}
    rows = [_state_json(job, states.get(job.name)) for job in scheduler.jobs]
    if json_out:
        emit_json(rows)
        return
    now = scheduler.clock.now()
    table(
        None,
        ["job", "last run", "took", "result", "next due", "runs", "failures", "running in"],
        [
            [
                r["job"],
                when(r["last_run"]),
                f"{r['last_duration']:.2f} s" if r["last_duration"] is not None else None,
                f"failed: {r['last_error']}" if r["last_error"] else _summary(r["result"]),
                when(r["next_due"]) if r["next_due"] else "now",
                r["runs"],
                r["failures"],
                r["holder"] if states.get(r["job"], JobState("")).held(now) else None,
            ]
            for r in rows
        ],
    )
