"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from pkiforge.api import problems
from pkiforge.api.deps import StateDep
from pkiforge.api.readiness import OK

router = APIRouter(tags=["health"])


class Ready(BaseModel):
    """The process can do its job."""

    status: str = Field(description='always "ready"')
    checks: dict[str, str] = Field(
        description='`database`, `write`, (SQLite) `storage` and (with Redis) `redis`, each "ok"'
    )


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up (liveness): never asks the database or the disk."""
    return {"status": "ok"}


@router.get("/readyz", response_model=Ready)
def readyz(state: StateDep, request: Request) -> Ready | JSONResponse:
    """The database answers, takes writes and (SQLite) has its free-space reserve; a CA exists;
    every configured Redis answers.

    Otherwise 503 problem+json whose `checks` say which check failed.
    """
    checks = state.readiness.checks()
    failed = [f"{name} {value}" for name, value in checks.items() if value != OK]
    if not failed:
        return Ready(status="ready", checks=checks)
    return problems.problem(
        503, "not-ready", "not ready: " + ", ".join(failed), scope=request.scope, checks=checks
    )
