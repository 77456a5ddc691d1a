"""/api/v1/renewal-policy: when this PKI counts a certificate as due for renewal, so that the
agent and `PkiClient` renew by the server's `rotation_policy` unless told otherwise."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from pkiforge.api.deps import StateDep

router = APIRouter(prefix="/api/v1", tags=["renewal"])


class RenewalPolicyOut(BaseModel):
    renew_before_expiry_days: int = Field(
        description="a certificate counts as due this many days before its notAfter "
        "(rotation_policy.renew_before_expiry_days); the agent's and PkiClient's default"
    )
    notification_days: list[int] = Field(
        description="days before notAfter at which certificate.expiring is sent"
    )


@router.get("/renewal-policy", response_model=RenewalPolicyOut)
async def renewal_policy(state: StateDep) -> RenewalPolicyOut:
    """The server's renewal policy (anyone: it holds no secret)."""
    policy = state.settings.rotation_policy
    return RenewalPolicyOut(
        renew_before_expiry_days=policy.renew_before_expiry_days,
        notification_days=sorted(policy.notification_days, reverse=True),
    )
