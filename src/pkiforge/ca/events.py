"""Events that pkiforge tells the outside world about, and their deliveries to subscribers.

An event is recorded in the same transaction as the change it reports (a revocation, a
renewal), with one delivery row per subscriber that wants it (the outbox): either both commit
or neither does, so no event is lost to a crash and none is sent for a change that did not
happen. Delivery happens later, at least once, by `ca/notifications.py`.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field
from typing import Any


class EventType(enum.StrEnum):
    CERTIFICATE_EXPIRING = "certificate.expiring"
    CERTIFICATE_RENEWED = "certificate.renewed"
    CERTIFICATE_REVOKED = "certificate.revoked"
    CA_ROTATED = "ca.rotated"
    CA_EXPIRING = "ca.expiring"
    SCHEDULER_FAILED = "scheduler.failed"


# the events a service's own webhook gets: those about its own certificates
SERVICE_EVENTS = frozenset(
    {
        EventType.CERTIFICATE_EXPIRING,
        EventType.CERTIFICATE_RENEWED,
        EventType.CERTIFICATE_REVOKED,
    }
)
# the endpoint of email notifications (notify/email.py), recipients chosen by event type
EMAIL_ENDPOINT = "email:smtp"
_SERVICE_ENDPOINT = "service:"  # global webhook names cannot hold a colon: no clash


def endpoint_name(service_id: str) -> str:
    """The outbox's name of a service's own webhook (`deliveries.endpoint`)."""
    return _SERVICE_ENDPOINT + service_id


def service_of(endpoint: str) -> str | None:
    """The service whose own webhook `endpoint` names; None for any other endpoint."""
    if endpoint.startswith(_SERVICE_ENDPOINT):
        return endpoint[len(_SERVICE_ENDPOINT) :]
    return None


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"  # not yet delivered; retried until it is or attempts run out
    DELIVERED = "delivered"
    FAILED = "failed"  # every attempt failed; `notifications retry` sends it again


@dataclass(frozen=True)
class Event:
    """What happened: `data` is the JSON body's `data` (service, serial, names, ...)."""

    event_id: str  # unique; receivers deduplicate on it (the `webhook-id` header)
    type: EventType
    occurred_at: dt.datetime
    service_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        """The JSON document sent to subscribers (the Standard Webhooks payload shape)."""
        return {
            "type": self.type.value,
            "timestamp": self.occurred_at.isoformat(),
            "data": self.data,
        }


@dataclass(frozen=True)
class Subscription:
    """A subscriber (a webhook endpoint) by name, and the event types it wants (all if None)."""

    name: str
    events: frozenset[EventType] | None = None

    def wants(self, event: Event) -> bool:
        return self.events is None or event.type in self.events


@dataclass(frozen=True)
class Delivery:
    """One event on its way to one subscriber."""

    delivery_id: int
    event: Event
    endpoint: str
    status: DeliveryStatus
    attempts: int = 0
    next_attempt_at: dt.datetime | None = None
    last_error: str | None = None
    delivered_at: dt.datetime | None = None


@dataclass(frozen=True)
class OutboxStats:
    """How many deliveries are in each state, and since when the oldest pending one waits."""

    by_status: dict[DeliveryStatus, int] = field(default_factory=dict)
    oldest_pending: dt.datetime | None = None  # the event time of the oldest pending delivery
