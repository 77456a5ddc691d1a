"""The uvicorn configuration of a serving process: our TLS context, our protocol, the app."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from functools import partial
from typing import Any

import uvicorn

from pkiforge.server.limits import HttpLimits
from pkiforge.server.proxied import ProxiedTLSProtocol, ProxySetup
from pkiforge.server.tls import TLSFiles, TLSHttpToolsProtocol, server_context

AppFactory = Callable[[], Any]  # builds the ASGI app where it is called (wiring.ServingApp)


def ssl_factory(files: TLSFiles, _config: Any, _default: Any) -> ssl.SSLContext:
    """uvicorn `ssl_context_factory`: module-level so worker processes can unpickle it."""
    return server_context(files)


class ServingConfig(uvicorn.Config):
    """uvicorn's Config with the HTTP layer's limits, which our protocol reads from it (it
    is pickled into each worker process with them)."""

    def __init__(
        self,
        app: AppFactory,
        *,
        http_limits: HttpLimits,
        proxy_setup: ProxySetup | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(app, **kwargs)
        self.http_limits = http_limits
        self.proxy_setup = proxy_setup


def uvicorn_config(
    app: AppFactory,
    files: TLSFiles,
    host: str,
    port: int,
    *,
    workers: int = 1,
    limits: HttpLimits | None = None,
    proxy: ProxySetup | None = None,
) -> ServingConfig:
    """The uvicorn configuration of the serving processes: our TLS context and protocol with
    the HTTP layer's limits; the app is built by `app` in each process that serves it.

    With `proxy`, uvicorn accepts plain TCP and our protocol reads the PROXY header and
    starts TLS itself (server/proxied.py), on asyncio's loop."""
    limits = limits or HttpLimits()
    tls: dict[str, Any] = (
        {"http": ProxiedTLSProtocol, "loop": "asyncio"}
        if proxy is not None
        else {"http": TLSHttpToolsProtocol, "ssl_context_factory": partial(ssl_factory, files)}
    )
    return ServingConfig(
        app,
        http_limits=limits,
        proxy_setup=proxy,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        **tls,
        timeout_graceful_shutdown=10,
        server_header=False,
        proxy_headers=False,  # the client address is the peer; proxies are handled explicitly
        log_level="info",
        # between requests; the guard applies the same limit after the handshake
        timeout_keep_alive=max(1, round(limits.idle_timeout)),
        # h11 (if chosen) bounds its own buffer too; httptools has no such limit
        h11_max_incomplete_event_size=limits.max_head,
    )
