"""`pkiforge serve`: the HTTPS API with mTLS."""

from __future__ import annotations

import os
import socket
from functools import partial
from typing import Annotated

import typer

from pkiforge.cli.output import err
from pkiforge.cli.state import CliState
from pkiforge.errors import Conflict
from pkiforge.settings import MAX_PORT, MIN_PORT
from pkiforge.whitelist import WHITELIST_FILE, load_whitelist
from pkiforge.wiring import check_serving

RENEW_CHECK_SECONDS = 60.0


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_cmd)


def serve_cmd(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Default: server.host (127.0.0.1).")] = None,
    port: Annotated[
        int | None,
        typer.Option(min=MIN_PORT, max=MAX_PORT, help="Default: server.port (8443)."),
    ] = None,
    workers: Annotated[int | None, typer.Option(min=1, max=64, help="Worker processes.")] = None,
) -> None:
    """Serve the HTTPS API (TLS 1.2+, client certificates verified against this CA)."""
    state: CliState = ctx.obj
    start(state, host, port, workers)


def start(state: CliState, host: str | None, port: int | None, workers: int | None) -> None:
    """Check the CA, bind the address, then serve until interrupted."""
    # the server's modules (FastAPI, uvicorn) are imported here: every other command starts
    # without them
    from pkiforge.server.listener import listening_socket

    settings = state.settings
    if not state.pki.hierarchy.all():
        raise Conflict(f"no CA in {state.home}: run `pkiforge init` first")
    state.passphrase()  # fail now, not in a worker, if no passphrase is available
    check_serving(settings)  # and the same for what the workers read from the settings
    if load_whitelist(state.home) is None:  # a malformed file raises ValueError: exit 3
        err.print(
            f"warning: no {WHITELIST_FILE} in {state.home}: "
            "no service may do more than /whoami and public reads"
        )
    bind_host, bind_port = host or settings.server.host, port or settings.server.port
    # bound before anything starts: a taken port fails here, the same way for any --workers
    listener = listening_socket(bind_host, bind_port)
    try:
        _serve(state, listener, bind_host, bind_port, workers or settings.server.workers)
    finally:
        listener.close()


def _serve(state: CliState, listener: socket.socket, host: str, port: int, workers: int) -> None:
    """Ensure the server certificate, then serve on `listener` until interrupted."""
    from pkiforge.server.certificate import ensure_server_certificate, start_renewal_thread
    from pkiforge.server.limits import HttpLimits
    from pkiforge.server.proxied import ProxySetup
    from pkiforge.server.run import serve, stop_with_supervisor
    from pkiforge.server.tls import reload_loop
    from pkiforge.store.checkpoint import WalCheckpointer
    from pkiforge.wiring import ServingApp

    # the workers' settings say how many they are (e.g. for the nonce store's choice)
    settings = state.settings.model_copy(
        update={
            "server": state.settings.server.model_copy(
                # and where they listen (ACME validation never connects there)
                update={"workers": workers, "host": host, "port": port}
            )
        }
    )
    files = ensure_server_certificate(state.pki, settings)
    stop = start_renewal_thread(
        lambda: ensure_server_certificate(state.pki, settings), RENEW_CHECK_SECONDS
    )
    # SQLite: checkpoint the WAL here, between requests, instead of inside a worker's commit
    checkpointer = WalCheckpointer.for_url(settings.effective_database_url)
    if checkpointer is not None:
        checkpointer.start()
    app = ServingApp(
        settings,
        state.passphrase_file.resolve() if state.passphrase_file else None,
        checkpointed=checkpointer is not None,
        tasks=(reload_loop, *([partial(stop_with_supervisor, os.getpid())] if workers > 1 else [])),
    )
    err.print(f"serving https://{host}:{port} (CA in {state.home})")
    err.print(
        f"  trust its root: pkiforge --home {state.home} ca chain root > root.pem\n"
        f"  try it:         curl --cacert root.pem https://{host}:{port}/readyz\n"
        f"  who may call:   {state.home / WHITELIST_FILE} (read at start); stop: Ctrl-C"
    )
    balancers = settings.server.proxy_protocol.trusted
    if balancers:
        err.print(f"  PROXY protocol v2 required from: {', '.join(balancers)}")
    try:
        serve(
            app,
            files,
            listener,
            workers=workers,
            limits=HttpLimits.from_settings(settings.server),
            proxy=ProxySetup.of(settings.server.proxy_protocol, files),
        )
    finally:
        stop.set()
        if checkpointer is not None:
            # this process's own connections first: closing the checkpointer's file would
            # drop the POSIX locks they hold on the database (store/checkpoint.py)
            state.close()
            checkpointer.stop()
