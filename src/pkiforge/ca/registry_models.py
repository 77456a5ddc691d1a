"""Domain values of the service registry and enrollment: plain frozen dataclasses."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ServiceRecord:
    """A registered service: who it is, where it listens, which names it may hold."""

    service_id: str
    service_name: str
    created_at: dt.datetime
    updated_at: dt.datetime
    service_type: str | None = None
    endpoints: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    health_check_url: str | None = None
    owner: dict[str, Any] = field(default_factory=dict)
    auto_renew: bool = True
    status: str = "active"
    last_seen: dt.datetime | None = None


@dataclass(frozen=True)
class ServiceWebhook:
    """A service's own webhook (`ca/service_webhooks.py`)."""

    service_id: str
    url: str
    secret: str  # the Standard Webhooks secret: shown once, when made, never by a read
    created_at: dt.datetime
    updated_at: dt.datetime

    def __repr__(self) -> str:  # keeps the secret out of logs and tracebacks
        return f"ServiceWebhook({self.service_id!r}, {self.url!r})"


@dataclass(frozen=True)
class ServiceChanges:
    """A partial update; None leaves a field as it is."""

    service_name: str | None = None
    service_type: str | None = None
    endpoints: tuple[str, ...] | None = None
    names: tuple[str, ...] | None = None
    health_check_url: str | None = None
    owner: dict[str, Any] | None = None
    auto_renew: bool | None = None


@dataclass(frozen=True)
class EnrollmentToken:
    """A one-time token for a service's first certificate; only a hash of its secret is kept."""

    token_id: str
    secret_hash: str
    service_id: str
    profile: str
    created_at: dt.datetime
    expires_at: dt.datetime
    created_by: str
    used_at: dt.datetime | None = None
    used_by: str | None = None
    certificate_serial: str | None = None

    def state(self, now: dt.datetime) -> str:
        """`active`, `used`, `revoked` or `expired` as of `now`."""
        if self.used_at is not None:
            return "revoked" if self.used_by == REVOKED_MARK else "used"
        return "expired" if self.expires_at <= now else "active"


REVOKED_MARK = "(revoked)"  # `used_by` of a token withdrawn before use
