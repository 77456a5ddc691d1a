"""Serve an app on a listening socket: in this process, or in several worker processes."""

from __future__ import annotations

import socket

import uvicorn

from pkiforge.server.config import AppFactory, uvicorn_config
from pkiforge.server.tls import TLSFiles
from pkiforge.server.workers import Supervisor


def serve(app: AppFactory, files: TLSFiles, listener: socket.socket, *, workers: int) -> None:
    """Serve the app `app` builds on `listener`, in this process or in `workers` processes
    (blocks; closes it). With several, `app` must be picklable: each worker calls it."""
    host, port = listener.getsockname()[:2]
    if workers > 1:
        Supervisor(app, files, host, port, workers).run(listener)
        return
    uvicorn.Server(uvicorn_config(app, files, host, port)).run(sockets=[listener])
