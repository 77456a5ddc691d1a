"""`create_app(settings)`: the HTTPS API. Routers parse, call one use-case and render."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator

import anyio.to_thread
from fastapi import FastAPI
from fastapi.routing import APIRoute
from sqlalchemy.engine import make_url

from pkiforge import __version__
from pkiforge.api import openapi, problems, tls
from pkiforge.api.metrics import durable_wait
from pkiforge.api.middleware import AnswerWhenDurable, BodyLimit, Latency
from pkiforge.api.routers import (
    ca,
    certificates,
    discovery,
    health,
    identity,
    keys,
    metrics,
    ocsp,
    services,
)
from pkiforge.api.state import AppState
from pkiforge.api.turns import TakeTurns
from pkiforge.settings import Settings
from pkiforge.store.durable import WalSync
from pkiforge.store.writer_lock import sqlite_path
from pkiforge.wiring import Pki

log = logging.getLogger("pkiforge.api")
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
    metrics.router,
)
TLS_RELOAD_SECONDS = 5.0


def create_app(settings: Settings, pki: Pki) -> FastAPI:
    """Build the API over already-wired services."""
    state = AppState.build(settings, pki)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # request threads per worker when the core runs in threads (api/blocking.py); the
        # limiter also bounds the few blocking calls made in threads whatever the mode
        limiter = anyio.to_thread.current_default_thread_limiter()
        limiter.total_tokens = max(state.threads, 4)
        task = asyncio.create_task(_reload_tls())
        if state.signing is not None:
            state.signing.start()
        _freeze_startup_objects()
        try:
            yield
        finally:
            gc.unfreeze()
            task.cancel()
            if state.signing is not None:
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
    app.add_middleware(TakeTurns, turns=state.turns)
    database = held_answers_database(settings)
    if database is not None:
        app.add_middleware(
            AnswerWhenDurable, sync=WalSync(database), held=durable_wait(state.registry)
        )
    app.add_middleware(BodyLimit, max_bytes=settings.server.max_body_bytes)
    app.add_middleware(Latency, histogram=state.api.latency)
    return app


def held_answers_database(settings: Settings) -> str | None:
    """The SQLite file whose commits the API makes durable before answering, if any.

    With `sqlite_synchronous: full` the API holds each answer until its commit is synced
    (store/durable.py), so the server's own connections need not sync in every commit.
    """
    url = settings.effective_database_url
    if settings.sqlite_synchronous != "full" or not url.startswith("sqlite"):
        return None
    return sqlite_path(make_url(url))


async def _reload_tls() -> None:
    """Pick up a renewed server certificate in this worker without a restart."""
    while True:
        await asyncio.sleep(TLS_RELOAD_SECONDS)
        try:
            if tls.reload_changed():
                log.info("server TLS certificate reloaded")
        except (OSError, ValueError) as exc:  # half-written files: try again next tick
            log.warning("TLS reload deferred: %s", exc)


def _freeze_startup_objects() -> None:
    """Leave what the worker built at startup out of the collector's full passes.

    Modules, the app, the wiring and their caches live as long as the worker. A full
    (generation 2) collection would walk all of them again each time and pause the worker for
    as long; frozen, they are no longer walked.
    """
    gc.collect()
    gc.freeze()
