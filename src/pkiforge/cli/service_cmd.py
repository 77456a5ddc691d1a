"""`pkiforge service ...`: services' own webhooks, on the local store as the operator."""

from __future__ import annotations

from typing import Annotated

import typer

from pkiforge.actor import OPERATOR
from pkiforge.ca.events import SERVICE_EVENTS
from pkiforge.ca.registry_models import ServiceWebhook
from pkiforge.cli.output import emit_json, err, out
from pkiforge.cli.state import CliState

app = typer.Typer(help="Registered services: their own webhooks.", no_args_is_help=True)
webhook = typer.Typer(
    help="A service's own webhook: its certificate events, signed with its secret.",
    no_args_is_help=True,
)
app.add_typer(webhook, name="webhook")
ServiceArg = Annotated[str, typer.Argument(help="Service id (as registered).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _json(hook: ServiceWebhook) -> dict[str, object]:
    return {
        "service_id": hook.service_id,
        "url": hook.url,
        "events": sorted(e.value for e in SERVICE_EVENTS),
        "created_at": hook.created_at,
        "updated_at": hook.updated_at,
    }


@webhook.command("set")
def set_webhook(
    ctx: typer.Context,
    service_id: ServiceArg,
    url: Annotated[str, typer.Option("--url", help="https URL the events are POSTed to.")],
    rotate_secret: Annotated[
        bool, typer.Option("--rotate-secret", help="Make a new secret; the old one stops now.")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Point a service's webhook at URL; prints its secret when one is made (never again)."""
    state: CliState = ctx.obj
    hook, secret = state.pki.service_webhooks.set(
        OPERATOR, service_id, url, rotate_secret=rotate_secret
    )
    if json_out:
        emit_json({**_json(hook), "secret": secret})
        return
    if secret is not None:
        out.print(secret, markup=False)
        err.print(
            f"webhook of service {service_id!r} set to {hook.url}; the secret above signs its "
            "deliveries and is not shown again",
            markup=False,
        )
    else:
        err.print(
            f"webhook of service {service_id!r} set to {hook.url}; its secret is unchanged",
            markup=False,
        )


@webhook.command("show")
def show_webhook(ctx: typer.Context, service_id: ServiceArg, json_out: JsonOpt = False) -> None:
    """A service's webhook (never its secret)."""
    state: CliState = ctx.obj
    hook = state.pki.service_webhooks.get(service_id)
    if json_out:
        emit_json(_json(hook))
        return
    for key, value in _json(hook).items():
        shown = ", ".join(value) if isinstance(value, list) else value
        out.print(f"{key}: {shown}", markup=False)


@webhook.command("clear")
def clear_webhook(ctx: typer.Context, service_id: ServiceArg) -> None:
    """Remove a service's webhook; deliveries still pending to it fail."""
    state: CliState = ctx.obj
    state.pki.service_webhooks.clear(OPERATOR, service_id)
    err.print(f"webhook of service {service_id!r} removed", markup=False)
