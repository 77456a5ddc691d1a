"""`pkiforge config show` and `pkiforge db upgrade`."""

from __future__ import annotations

from typing import Annotated

import typer
import yaml

from pkiforge.cli.output import emit_json, out
from pkiforge.cli.state import CliState
from pkiforge.store.db import upgrade
from pkiforge.wiring import open_engine

config_app = typer.Typer(help="Configuration.", no_args_is_help=True)
db_app = typer.Typer(help="The database.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")
    app.add_typer(db_app, name="db")


@config_app.command("show")
def show(ctx: typer.Context, json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The effective configuration (file + environment); secrets are never part of it."""
    state: CliState = ctx.obj
    data = state.settings.public_dict()
    if json_out:
        emit_json(data)
    else:
        out.print(yaml.safe_dump(data, sort_keys=False).rstrip())


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context) -> None:
    """Apply pending schema migrations (also done automatically on first use)."""
    state: CliState = ctx.obj
    state.home.mkdir(mode=0o700, parents=True, exist_ok=True)
    settings = state.settings
    engine = open_engine(settings)
    try:
        before, after = upgrade(engine)
    finally:
        engine.dispose()
    if before == after:
        out.print(f"database already at revision {after}")
    else:
        out.print(f"database upgraded from {before or 'empty'} to {after}")
