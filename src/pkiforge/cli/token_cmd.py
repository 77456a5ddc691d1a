"""`pkiforge token ...`: one-time enrollment tokens for a service's first certificate."""

from __future__ import annotations

from typing import Annotated

import typer

from pkiforge.ca.enrollment import EnrollmentService
from pkiforge.ca.registry_models import EnrollmentToken
from pkiforge.cli.output import emit_json, err, out, table, when
from pkiforge.cli.state import CliState
from pkiforge.durations import parse_duration
from pkiforge.errors import InvalidInput

app = typer.Typer(help="One-time enrollment tokens (bootstrap a service).", no_args_is_help=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _service(state: CliState) -> EnrollmentService:
    return EnrollmentService(state.pki.ctx)


def _json(token: EnrollmentToken, state: CliState) -> dict[str, object]:
    return {
        "token_id": token.token_id,
        "service_id": token.service_id,
        "profile": token.profile,
        "status": token.state(state.pki.ctx.clock.now()),
        "created_at": token.created_at,
        "expires_at": token.expires_at,
        "created_by": token.created_by,
        "used_at": token.used_at,
        "used_by": token.used_by,
        "certificate_serial": token.certificate_serial,
    }


@app.command("create")
def create(
    ctx: typer.Context,
    service: Annotated[str, typer.Option("--service", help="Service id the token is bound to.")],
    ttl: Annotated[str, typer.Option("--ttl", help="Lifetime, e.g. 1h, 30m, 2d.")] = "1h",
    profile: Annotated[str, typer.Option("--profile", help="Certificate profile.")] = "service",
    json_out: JsonOpt = False,
) -> None:
    """Mint a token; it is printed once and only its hash is stored."""
    state: CliState = ctx.obj
    try:
        lifetime = parse_duration(ttl)
    except ValueError as exc:
        raise InvalidInput(str(exc), field="ttl") from None
    token, text = _service(state).create(service, lifetime, profile=profile)
    if json_out:
        emit_json({**_json(token, state), "token": text})
        return
    out.print(text)
    err.print(
        f"token {token.token_id} for service {token.service_id!r} "
        f"(profile {token.profile}), valid until {when(token.expires_at)} UTC, one use; "
        "it is not shown again"
    )


@app.command("list")
def list_tokens(
    ctx: typer.Context,
    service: Annotated[str | None, typer.Option("--service", help="Only this service.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Tokens with their state (active, used, revoked, expired); never their secrets."""
    state: CliState = ctx.obj
    tokens = _service(state).list(service)
    if json_out:
        emit_json([_json(t, state) for t in tokens])
        return
    now = state.pki.ctx.clock.now()
    table(
        None,
        ["token", "service", "profile", "status", "expires", "used", "certificate"],
        [
            [
                t.token_id,
                t.service_id,
                t.profile,
                t.state(now),
                when(t.expires_at),
                when(t.used_at),
                t.certificate_serial,
            ]
            for t in tokens
        ],
    )


@app.command("revoke")
def revoke(ctx: typer.Context, token_id: Annotated[str, typer.Argument(help="Token id.")]) -> None:
    """Withdraw an unused token."""
    state: CliState = ctx.obj
    token = _service(state).revoke(token_id)
    err.print(f"token {token.token_id} for service {token.service_id!r} revoked")
