"""`pkiforge audit ...`: read, anchor and verify the hash-chained audit trail."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from pkiforge.ca.audit import Anchor, verify_chain
from pkiforge.cli.files import read_input, write_output
from pkiforge.cli.output import emit_json, err, out, table, when
from pkiforge.cli.state import CliState
from pkiforge.errors import InvalidInput

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
    with state.pki.store.transaction(readonly=True) as tx:
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


@app.command("anchor")
def anchor(
    ctx: typer.Context,
    out_file: Annotated[Path, typer.Option("--out", help="File, or - for stdout.")] = Path("-"),
) -> None:
    """Record the chain head (seq, hash); keep it outside the database for `verify --anchor`."""
    state: CliState = ctx.obj
    with state.pki.store.transaction(readonly=True) as tx:
        report = verify_chain(tx.audit.iterate())
    if not report.ok or report.head is None:
        raise InvalidInput("the audit chain is empty or broken; run `audit verify`", field="audit")
    data = {"seq": report.head.seq, "hash": report.head.hash}
    write_output(out_file, (json.dumps(data) + "\n").encode())


def _anchors(paths: list[Path]) -> list[Anchor]:
    anchors = []
    for path in paths:
        text = read_input(path, "anchor", "anchor")
        try:
            data = json.loads(text)
            anchors.append(Anchor(int(data["seq"]), str(data["hash"])))
        except (ValueError, KeyError, TypeError):
            raise InvalidInput(
                f"{path} is not an anchor written by `audit anchor`", field="anchor"
            ) from None
    return anchors


@app.command("verify")
def verify(
    ctx: typer.Context,
    anchor_files: Annotated[
        list[Path] | None,
        typer.Option("--anchor", help="Anchor file from `audit anchor`; repeatable."),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Check the hash chain (and anchors); exit 8 and name each break."""
    state: CliState = ctx.obj
    anchors = _anchors(anchor_files or [])
    with state.pki.store.transaction(readonly=True) as tx:
        report = verify_chain(tx.audit.iterate(), anchors)
    head = {"seq": report.head.seq, "hash": report.head.hash} if report.head else None
    if json_out:
        emit_json(
            {
                "ok": report.ok,
                "entries": report.entries,
                "problems": report.problems,
                "head": head,
                "anchors_checked": len(anchors),
            }
        )
    elif report.ok:
        out.print(
            f"audit chain intact: {report.entries} entries"
            + (f", {len(anchors)} anchor(s) matched" if anchors else "")
            + (f"; head {report.head.seq} {report.head.hash[:16]}…" if report.head else "")
        )
    else:
        for problem in report.problems:
            err.print(f"[red]tampered:[/red] {problem}")
        err.print(
            f"audit chain broken: {len(report.problems)} problem(s) in {report.entries} entries"
        )
    if not report.ok:
        raise typer.Exit(INTEGRITY_EXIT)
