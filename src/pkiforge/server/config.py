"""The uvicorn configuration of a serving process: our TLS context, our protocol, the app."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from functools import partial
from typing import Any

import uvicorn

from pkiforge.server.tls import TLSFiles, TLSHttpToolsProtocol, server_context

AppFactory = Callable[[], Any]  # builds the ASGI app where it is called (wiring.ServingApp)


def ssl_factory(files: TLSFiles, _config: Any, _default: Any) -> ssl.SSLContext:
    """uvicorn `ssl_context_factory`: module-level so worker processes can unpickle it."""
    return server_context(files)


def uvicorn_config(
    app: AppFactory, files: TLSFiles, host: str, port: int, *, workers: int = 1
) -> uvicorn.Config:
    """The uvicorn configuration of the serving processes: our TLS context and protocol; the
    app is built by `app` in each process that serves it."""
    return uvicorn.Config(
        app,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        http=TLSHttpToolsProtocol,
        ssl_context_factory=partial(ssl_factory, files),
        timeout_graceful_shutdown=10,
        server_header=False,
        proxy_headers=False,  # the client address is the peer; proxies are handled explicitly
        log_level="info",
    )
