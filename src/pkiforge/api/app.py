"""`create_app(state)`: the HTTPS API over parts the composition root (wiring.py) built.

Routers parse, call one use-case and render.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from typing import Any

import anyio.to_thread
from fastapi import FastAPI
from fastapi.routing import APIRoute

from pkiforge import __version__
from pkiforge.api import openapi, problems
from pkiforge.api.middleware import BodyLimit, Latency
from pkiforge.api.request_id import RequestId
from pkiforge.api.routers import (
    ca,
    certificates,
    discovery,
    health,
    identity,
    keys,
    metrics,
    ocsp,
    renewal,
    services,
)
from pkiforge.api.state import AppState

# routes are matched in this order and no two routers' paths overlap: the ones every service
# calls most (health checks, issuance and renewal) are tried first
ROUTERS = (
    health.router,
    certificates.router,
    ca.router,
    identity.router,
    keys.router,
    ocsp.router,
    services.router,
    discovery.router,
    renewal.router,
    metrics.router,
)


def create_app(
    state: AppState,
    *,
    tasks: Sequence[Callable[[], Coroutine[Any, Any, None]]] = (),
) -> FastAPI:
    """The API over already-built parts; `tasks` run in the app's event loop while it serves."""
    settings, pki = state.settings, state.pki

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # synchronous endpoints and dependencies run in anyio's thread pool (FastAPI's own
        # machinery); `server.threads` sizes it, else anyio's default applies
        if settings.server.threads is not None:
            anyio.to_thread.current_default_thread_limiter().total_tokens = settings.server.threads
        running = [asyncio.create_task(task()) for task in tasks]
        state.signing.start()
        _freeze_startup_objects()
        try:
            yield
        finally:
            gc.unfreeze()
            for task in running:
                task.cancel()
            state.signing.close()  # write the last auth events before the store closes
            pki.close()

    app = FastAPI(
        title="pkiforge",
        version=__version__,
        description="Private PKI for service fleets: certificates, CRLs, registry, discovery.",
        lifespan=lifespan,
    )
    app.state.pkiforge = state
    routes = [r for router in ROUTERS for r in router.routes if isinstance(r, APIRoute)]
    problems.install(app, routes)
    for router in ROUTERS:
        app.include_router(router)
    openapi.document(app, routes, pki.ctx.config.profiles)
    if state.acme is not None:
        from pkiforge.api.acme.app import create_acme_app

        acme = create_acme_app(state.acme)
        acme.state.pkiforge = state
        app.mount("/acme", acme)
    app.add_middleware(BodyLimit, max_bytes=settings.server.max_body_bytes)
    app.add_middleware(Latency, histogram=state.api.latency)
    app.add_middleware(RequestId)  # outermost: every answer of the app carries the id
    return app


def _freeze_startup_objects() -> None:
    """Leave what the worker built at startup out of the collector's full passes.

    Modules, the app, the wiring and their caches live as long as the worker. A full
    (generation 2) collection would walk all of them again each time and pause the worker for
    as long; frozen, they are no longer walked.
    """
    gc.collect()
    gc.freeze()
