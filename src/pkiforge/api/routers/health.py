"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter

from pkiforge.api.deps import StateDep
from pkiforge.errors import StoreUnavailable

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(state: StateDep) -> dict[str, str]:
    """The database answers and a CA exists; 503 problem+json otherwise."""
    if not state.pki.hierarchy.all():  # a query: fails with StoreUnavailable when the DB is down
        raise StoreUnavailable("no CA is initialised")
    return {"status": "ready"}
