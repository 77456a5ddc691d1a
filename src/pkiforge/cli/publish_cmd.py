"""`pkiforge publish serve`: CRLs, CA certificates and OCSP over plain HTTP (api/publish.py)."""

from __future__ import annotations

from typing import Annotated

import typer

from pkiforge.cli.output import err
from pkiforge.cli.state import CliState
from pkiforge.errors import Conflict
from pkiforge.settings import MAX_PORT, MIN_PORT

app = typer.Typer(
    help="Publish CRLs, CA certificates and OCSP over plain HTTP.", no_args_is_help=True
)


@app.command("serve")
def serve(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Default: publish.host (127.0.0.1).")] = None,
    port: Annotated[
        int | None,
        typer.Option(min=MIN_PORT, max=MAX_PORT, help="Default: publish.port (8080)."),
    ] = None,
) -> None:
    """Serve what relying parties fetch, over HTTP without TLS or client certificates, from
    the database; no CA key is used (run it beside `serve`, on every replica or alone)."""
    import uvicorn

    from pkiforge.api.publish import create_publish_app
    from pkiforge.server.listener import listening_socket
    from pkiforge.wiring import build_pki

    state: CliState = ctx.obj
    settings = state.settings
    if settings.database_url is None:
        state._require_home()  # never create an empty database in a wrong folder
    state.passphrase()  # opens the OCSP responders' sealed keys; fail now if none is given
    pki = build_pki(settings, state.passphrase, ca_keys=False)
    if not pki.hierarchy.all():
        pki.close()
        raise Conflict(f"no CA in {state.home}: run `pkiforge init` first")
    bind_host, bind_port = host or settings.publish.host, port or settings.publish.port
    listener = listening_socket(bind_host, bind_port)
    config = uvicorn.Config(
        create_publish_app(pki),
        http="httptools",
        loop="uvloop",
        access_log=False,
        log_level="warning",
        timeout_keep_alive=settings.server.idle_timeout_seconds,
        limit_concurrency=settings.server.max_connections,
        h11_max_incomplete_event_size=settings.server.max_head_bytes,
    )
    err.print(f"publishing http://{bind_host}:{bind_port} (CRLs, CA certificates, OCSP)")
    err.print(f"  try it: curl -s http://{bind_host}:{bind_port}/api/v1/ca/root")
    try:
        uvicorn.Server(config).run(sockets=[listener])
    finally:
        listener.close()
