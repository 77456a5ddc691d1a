"""`pkiforge audit ...`: read and verify the hash-chained audit trail."""

from __future__ import annotations

from typing import Annotated

import typer

from pkiforge.ca.audit import verify_chain
from pkiforge.cli.output import emit_json, err, out, table, when
from pkiforge.cli.state import CliState

app = typer.Typer(help="The audit trail.", no_args_is_help=True)

INTEGRITY_EXIT = 8


@app.command("list")
def list_entries(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=1, max=100000)] = 50,
    action: Annotated[str | None, typer.Option(help="e.g. cert.issue, cert.revoke.")] = None,
    subject: Annotated[str | None, typer.Option(help="A serial or CA name.")] = None,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The newest entries first."""
    state: CliState = ctx.obj
    with state.pki.store.transaction() as tx:
        entries = tx.audit.recent(limit, action, subject)
    if json_out:
        emit_json(
            [
                {
                    "seq": e.seq,
                    "at": e.at,
                    "actor": e.actor,
                    "address": e.address,
                    "action": e.action,
                    "subject": e.subject,
                    "details": e.details,
                    "hash": e.hash,
                }
                for e in entries
            ]
        )
        return
    table(
        None,
        ["seq", "when", "actor", "action", "subject"],
        [[e.seq, when(e.at), e.actor, e.action, e.subject] for e in entries],
    )


@app.command("verify")
def verify(ctx: typer.Context, json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Check the hash chain; exit 8 and name each break if anything was edited or removed."""
    state: CliState = ctx.obj
    with state.pki.store.transaction() as tx:
        report = verify_chain(tx.audit.iterate())
    if json_out:
        emit_json({"ok": report.ok, "entries": report.entries, "problems": report.problems})
    elif report.ok:
        out.print(f"audit chain intact: {report.entries} entries")
    else:
        for problem in report.problems:
            err.print(f"[red]tampered:[/red] {problem}")
        err.print(
            f"audit chain broken: {len(report.problems)} problem(s) in {report.entries} entries"
        )
    if not report.ok:
        raise typer.Exit(INTEGRITY_EXIT)
