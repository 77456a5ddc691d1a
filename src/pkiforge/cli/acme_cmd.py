"""`pkiforge acme ...`: the ACME server's external account binding keys (docs/acme.md)."""

from __future__ import annotations

from typing import Annotated

import typer

from pkiforge.cli.output import emit_json, err, out
from pkiforge.cli.state import CliState
from pkiforge.errors import InvalidInput
from pkiforge.whitelist import load_whitelist

app = typer.Typer(help="The ACME server (RFC 8555).", no_args_is_help=True)
eab = typer.Typer(help="External account binding keys: bind ACME accounts to services.")
app.add_typer(eab, name="eab")


@eab.command("create")
def create(
    ctx: typer.Context,
    service: Annotated[str, typer.Option("--service", help="Service the bound account orders as.")],
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Make a key id and HMAC key for one ACME account; the key is printed once."""
    # imported here: the JOSE library is not loaded for every other command
    from pkiforge.acme.jws import b64encode
    from pkiforge.acme.service import new_external_key
    from pkiforge.actor import OPERATOR
    from pkiforge.store.acme_repos import SqlAcmeRepository

    state: CliState = ctx.obj
    whitelist = load_whitelist(state.home)
    if whitelist is None or whitelist.policy_for(service) is None:
        raise InvalidInput(
            f"service {service!r} is not in the service whitelist: its account could order nothing",
            field="service",
        )
    key = new_external_key(service, state.pki.ctx.clock.now())
    SqlAcmeRepository(state.pki.store, audit=state.pki.ctx.audit).add_external_key(key, OPERATOR)
    hmac_key = b64encode(key.mac_key)
    if json_out:
        emit_json({"kid": key.kid, "hmac_key": hmac_key, "service_id": key.service_id})
        return
    out.print(f"kid: {key.kid}")
    out.print(f"hmac_key: {hmac_key}")
    err.print(
        f"binds one ACME account to service {service!r}; the HMAC key is not shown again "
        "(e.g. lego --eab --kid KID --hmac KEY, certbot --eab-kid KID --eab-hmac-key KEY)"
    )
