"""`pkiforge`: the admin CLI. Parses, calls one use-case, renders; errors are one line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pkiforge import __version__
from pkiforge.cli import (
    acme_cmd,
    agent_cmd,
    audit_cmd,
    backup_cmd,
    ca_cmd,
    cert_cmd,
    crl_cmd,
    init_cmd,
    keys_cmd,
    notifications_cmd,
    publish_cmd,
    request_cmd,
    scheduler_cmd,
    serve_cmd,
    service_cmd,
    system_cmd,
    token_cmd,
    usage,
)
from pkiforge.cli.output import INTERRUPTED, INVALID_INPUT, USAGE, err, exit_code, fail
from pkiforge.cli.state import CliState
from pkiforge.errors import PkiError, StoreUnavailable

app = typer.Typer(
    name="pkiforge",
    help="A private PKI for fleets of services.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"pkiforge {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    home: Annotated[
        Path, typer.Option("--home", envvar="PKIFORGE_HOME", help="Data directory.")
    ] = Path("./pkiforge-data"),
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            envvar="PKIFORGE_DATABASE_URL",
            help="SQLAlchemy URL (default: SQLite in the data directory).",
        ),
    ] = None,
    passphrase_file: Annotated[
        Path | None, typer.Option("--passphrase-file", help="File holding the CA passphrase.")
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """A private PKI for fleets of services."""
    state = CliState(home=home, database_url=database_url, passphrase_file=passphrase_file)
    ctx.obj = state
    ctx.call_on_close(state.close)


init_cmd.register(app)
system_cmd.register(app)
serve_cmd.register(app)
agent_cmd.register(app)
request_cmd.register(app)
app.add_typer(ca_cmd.app, name="ca")
app.add_typer(cert_cmd.app, name="cert")
app.add_typer(crl_cmd.app, name="crl")
app.add_typer(audit_cmd.app, name="audit")
app.add_typer(token_cmd.app, name="token")
app.add_typer(keys_cmd.app, name="keys")
app.add_typer(backup_cmd.app, name="backup")
app.add_typer(scheduler_cmd.app, name="scheduler")
app.add_typer(notifications_cmd.app, name="notifications")
app.add_typer(acme_cmd.app, name="acme")
app.add_typer(publish_cmd.app, name="publish")
app.add_typer(service_cmd.app, name="service")


def run() -> None:
    """Console entry point: map every failure to one line and a documented exit code."""
    try:
        result = app(standalone_mode=False)
    except PkiError as exc:
        raise SystemExit(_exit(fail(_message(exc), exit_code(exc)))) from None
    except ValueError as exc:  # configuration errors from settings
        raise SystemExit(_exit(fail(str(exc), INVALID_INPUT))) from None
    except typer.Abort:  # Ctrl-C or end of input at a prompt (older click)
        raise SystemExit(_exit(fail("aborted", INTERRUPTED))) from None
    except usage.CLICK_EXCEPTION as exc:
        raise SystemExit(_click_failure(exc)) from None
    except OSError as exc:  # a file given on the command line cannot be written or read
        message = f"{exc.strerror or exc}: {exc.filename or ''}".strip().rstrip(":")
        raise SystemExit(_exit(fail(message, INVALID_INPUT))) from None
    # with standalone_mode=False click returns the code of a typer.Exit instead of raising
    raise SystemExit(result if isinstance(result, int) else 0)


def _click_failure(exc: Exception) -> int:
    if usage.is_help_request(exc):
        exc.show()  # type: ignore[attr-defined]  # click prints the group's help
        return USAGE
    message, hint = usage.describe(exc)
    if not isinstance(exc, usage.USAGE_ERROR):  # click's FileError: a file it could not open
        return _exit(fail(message, INVALID_INPUT))
    fail(message)
    err.print(hint, markup=False)
    return USAGE


def _exit(exc: typer.Exit) -> int:
    return exc.exit_code


def _message(exc: PkiError) -> str:
    """The error line. A store this command opened itself (its own database or Redis) is the
    operator's own: its cause is shown too, host and port included, which a server keeps
    for its log (errors.StoreUnavailable)."""
    if isinstance(exc, StoreUnavailable) and exc.internal:
        return f"{exc}: {exc.internal}"
    return str(exc)
