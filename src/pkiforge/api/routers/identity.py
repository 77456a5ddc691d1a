"""Who am I? The caller's verified service identity (useful to check an mTLS set-up)."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter
from pydantic import BaseModel

from pkiforge.api.deps import ServiceDep

router = APIRouter(prefix="/api/v1", tags=["identity"])


class WhoAmI(BaseModel):
    service_id: str
    serial: str
    fingerprint_sha256: str
    not_after: dt.datetime


@router.get("/whoami", response_model=WhoAmI)
async def whoami(identity: ServiceDep) -> WhoAmI:
    """The service named by the client certificate of this connection (401 without one)."""
    return WhoAmI(
        service_id=identity.service_id,
        serial=format(identity.serial, "x"),
        fingerprint_sha256=identity.fingerprint,
        not_after=identity.not_after,
    )
