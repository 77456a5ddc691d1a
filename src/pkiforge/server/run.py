"""Serve an app on a listening socket: in this process, or in uvicorn's worker processes."""

from __future__ import annotations

import asyncio
import os
import signal
import socket

import uvicorn
from uvicorn.supervisors import Multiprocess

from pkiforge.server.config import AppFactory, uvicorn_config
from pkiforge.server.limits import HttpLimits
from pkiforge.server.proxied import ProxySetup
from pkiforge.server.tls import TLSFiles

PARENT_CHECK_SECONDS = 1.0


def serve(
    app: AppFactory,
    files: TLSFiles,
    listener: socket.socket,
    *,
    workers: int,
    limits: HttpLimits | None = None,
    proxy: ProxySetup | None = None,
) -> None:
    """Serve the app `app` builds on `listener`, in this process or in `workers` processes
    that share it (blocks until SIGINT/SIGTERM). With several, `app` must be picklable: each
    worker calls it; uvicorn's supervisor restarts a worker that dies. With `proxy`, trusted
    balancers' connections start with a PROXY v2 header (server/proxied.py)."""
    host, port = listener.getsockname()[:2]
    config = uvicorn_config(app, files, host, port, workers=workers, limits=limits, proxy=proxy)
    if workers > 1:
        Multiprocess(config, sockets=[listener]).run()
        return
    uvicorn.Server(config).run(sockets=[listener])


async def stop_with_supervisor(supervisor: int) -> None:
    """In a worker: stop gracefully (SIGTERM to itself) once its parent is no longer the
    supervisor (pid `supervisor`), so that no orphan keeps serving the shared socket."""
    while True:
        if os.getppid() != supervisor:
            os.kill(os.getpid(), signal.SIGTERM)
            return
        await asyncio.sleep(PARENT_CHECK_SECONDS)
