"""API schemas of the request-signing key registry (pydantic; never rows or domain values)."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field

from pkiforge.api.schemas.common import Pem, Text
from pkiforge.auth.keys import RegisteredKey
from pkiforge.auth.registry import KeyRegistration
from pkiforge.auth.usage import AuthEvent, DailyUsage


class KeyRegistrationIn(BaseModel):
    """POST /api/v1/keys."""

    model_config = ConfigDict(extra="forbid")

    public_key: Pem = Field(min_length=1, max_length=20_000, description="PEM public key")
    client_name: str = Field(min_length=1, max_length=255)
    email: str | None = Field(default=None, max_length=255)
    organization: str | None = Field(default=None, max_length=255)
    algorithm: str | None = Field(default=None, description="default: the key's own")

    def registration(self) -> KeyRegistration:
        return KeyRegistration(
            self.public_key.encode("utf-8"),
            self.client_name,
            self.email,
            self.organization,
            self.algorithm,
        )


class RevocationIn(BaseModel):
    """POST /api/v1/keys/{key_id}/revoke."""

    model_config = ConfigDict(extra="forbid")

    reason: Text | None = Field(default=None, max_length=255)


class KeyOut(BaseModel):
    key_id: str
    fingerprint: str
    algorithm: str
    client_name: str
    email: str | None
    organization: str | None
    status: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None
    revocation_reason: str | None


class KeyPage(BaseModel):
    items: list[KeyOut]
    limit: int
    offset: int
    next_offset: int | None  # None on the last page


class UsageOut(BaseModel):
    day: dt.date
    successes: int
    failures: int


class EventOut(BaseModel):
    at: dt.datetime
    key_id: str | None
    address: str | None
    method: str
    path: str
    outcome: str
    reason: str | None


class WhoAmIOut(BaseModel):
    kind: str  # "key" or "service"
    id: str
    client_name: str | None = None
    algorithm: str | None = None
    scheme: str  # "mtls", "rfc9421" or "pki-legacy"


def key_out(key: RegisteredKey) -> KeyOut:
    return KeyOut(
        key_id=key.key_id,
        fingerprint=key.fingerprint,
        algorithm=str(key.algorithm),
        client_name=key.client_name,
        email=key.email,
        organization=key.organization,
        status=key.status.value,
        created_at=key.created_at,
        revoked_at=key.revoked_at,
        revocation_reason=key.revocation_reason,
    )


def usage_out(usage: DailyUsage) -> UsageOut:
    return UsageOut(day=usage.day, successes=usage.successes, failures=usage.failures)


def event_out(event: AuthEvent) -> EventOut:
    return EventOut(
        at=event.at,
        key_id=event.key_id,
        address=event.address,
        method=event.method,
        path=event.path,
        outcome=event.outcome,
        reason=event.reason,
    )
