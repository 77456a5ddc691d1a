"""`pkiforge notifications ...`: the events waiting for, or refused by, webhook subscribers."""

from __future__ import annotations

from typing import Annotated

import typer

from pkiforge.ca.events import Delivery, DeliveryStatus
from pkiforge.cli.output import UNAVAILABLE, emit_json, out, table, when
from pkiforge.cli.state import CliState
from pkiforge.errors import InvalidInput
from pkiforge.notify.webhooks import new_secret
from pkiforge.wiring import notification_sender

app = typer.Typer(help="Webhook notifications: deliveries, retries, secrets.", no_args_is_help=True)


def _json(d: Delivery) -> dict[str, object]:
    return {
        "id": d.delivery_id,
        "event_id": d.event.event_id,
        "type": d.event.type.value,
        "occurred_at": d.event.occurred_at,
        "service": d.event.service_id,
        "endpoint": d.endpoint,
        "status": d.status.value,
        "attempts": d.attempts,
        "next_attempt_at": d.next_attempt_at,
        "last_error": d.last_error,
        "delivered_at": d.delivered_at,
        "data": d.event.data,
    }


@app.command("list")
def list_deliveries(
    ctx: typer.Context,
    status: Annotated[
        str | None, typer.Option(help="pending, delivered or failed (default: every status).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=100000)] = 50,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Deliveries, newest first: what each subscriber was sent, and what became of it."""
    state: CliState = ctx.obj
    try:
        wanted = DeliveryStatus(status) if status is not None else None
    except ValueError:
        raise InvalidInput(
            f"unknown status {status!r}: pending, delivered or failed", field="status"
        ) from None
    deliveries = state.pki.notifications.list(wanted, limit)
    if json_out:
        emit_json([_json(d) for d in deliveries])
        return
    table(
        None,
        ["id", "event", "service", "endpoint", "status", "tries", "next try", "last error"],
        [
            [
                d.delivery_id,
                d.event.type.value,
                d.event.service_id or "",
                d.endpoint,
                d.status.value,
                d.attempts,
                when(d.next_attempt_at) if d.status is DeliveryStatus.PENDING else "",
                d.last_error or "",
            ]
            for d in deliveries
        ],
    )


@app.command("retry")
def retry(
    ctx: typer.Context,
    ids: Annotated[list[int] | None, typer.Argument(help="Delivery ids (see `list`).")] = None,
    all_failed: Annotated[bool, typer.Option("--all-failed", help="Every failed one.")] = False,
) -> None:
    """Send deliveries now: failed ones again with their attempts counted afresh, pending
    ones without waiting for their next try (the server, or `deliver`, sends them)."""
    state: CliState = ctx.obj
    if bool(ids) == all_failed:
        raise InvalidInput("name delivery ids, or give --all-failed (not both)", field="ids")
    if all_failed:
        count = state.pki.notifications.retry_failed(None)
        out.print(f"{count} failed {_deliveries(count)} pending again", markup=False)
        return
    assert ids is not None
    done = state.pki.notifications.send_now(ids)  # unknown or delivered ids: exit 4 / 5
    out.print(
        f"{done.failed} failed {_deliveries(done.failed)} pending again, "
        f"{done.pending} pending {_deliveries(done.pending)} due now",
        markup=False,
    )


def _deliveries(count: int) -> str:
    return "delivery" if count == 1 else "deliveries"


@app.command("deliver")
def deliver(ctx: typer.Context) -> None:
    """Send every delivery that is due now, once (what the server does every few seconds)."""
    state: CliState = ctx.obj
    sender = notification_sender(state.pki)
    try:
        report = state.pki.notifications.deliver_due(sender)
    finally:
        sender.close()
    summary = f"{report.delivered} delivered, {report.retrying} to retry, {report.failed} failed"
    out.print(summary, markup=False)
    for error in report.errors:
        out.print(f"  {error}", markup=False)
    if report.retrying or report.failed:
        # a subscriber that cannot be reached or refused: a dependency unavailable, not a bug
        raise typer.Exit(UNAVAILABLE)


@app.command("secret")
def secret() -> None:
    """Print a new webhook secret (`whsec_...`) for a subscriber's `secret_file`."""
    out.print(new_secret(), markup=False)
