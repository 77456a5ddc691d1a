"""Notifications: events recorded with the change they report, delivered later, at least once.

`Notifier.emit` runs inside the transaction of the change and writes the event and a pending
delivery per interested subscriber (the outbox). `NotificationService.deliver_due` takes the
deliveries that are due, hands each to a `Sender` outside any transaction, and records the
outcome: delivered, or retried later with a doubling delay until `max_retries` retries have
failed. A process that dies between sending and recording leaves its hold to expire, and the
delivery is sent again: receivers deduplicate on the event id.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pkiforge.ca.events import (
    SERVICE_EVENTS,
    Delivery,
    DeliveryStatus,
    Event,
    EventType,
    OutboxStats,
    Subscription,
    endpoint_name,
)
from pkiforge.ca.models import CertificateRecord
from pkiforge.ca.ports import Store, Transaction
from pkiforge.clock import Clock
from pkiforge.errors import Conflict, NotFound

log = logging.getLogger(__name__)


class DeliveryFailed(Exception):
    """The subscriber did not take the event; the message says why (no secret in it)."""


class Sender(Protocol):
    def send(self, endpoint: str, event: Event) -> None:
        """Deliver `event` to the subscriber named `endpoint`.

        Raises:
            DeliveryFailed: not delivered (refused, unreachable, timed out).
        """


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how late a failed delivery is tried again."""

    max_retries: int = 3
    retry_delay: dt.timedelta = dt.timedelta(hours=1)
    # how long a deliverer holds the delivery it is sending before another may take it: more
    # than one attempt can take (wiring derives it from the sender's timeout)
    hold: dt.timedelta = dt.timedelta(seconds=30)

    def retry_at(self, attempts: int, now: dt.datetime) -> dt.datetime | None:
        """When to try again after `attempts` failed attempts; None when no retry is left."""
        if attempts > self.max_retries:
            return None
        delay: dt.timedelta = self.retry_delay * 2 ** (attempts - 1)
        return now + delay


@dataclass
class Notifier:
    """Records events for the subscribers that want them; nothing at all when none does.

    The subscribers are the configured ones (global webhooks, email) and, for an event about
    a service's certificate, that service's own webhook if its registry entry has one.
    """

    clock: Clock
    subscriptions: tuple[Subscription, ...] = ()

    def emit(
        self,
        tx: Transaction,
        type_: EventType,
        *,
        service_id: str | None = None,
        data: dict[str, Any] | None = None,
        event_id: str | None = None,
    ) -> Event | None:
        """Record an event inside `tx`; None when no subscriber wants this type, or when
        `event_id` names one recorded before (an event with a fixed id is made once)."""
        now = self.clock.now()
        if event_id is not None and tx.outbox.has(event_id):
            return None
        event = Event(
            event_id or f"evt_{uuid.uuid4().hex}", type_, now, service_id, dict(data or {})
        )
        endpoints = [s.name for s in self.subscriptions if s.wants(event)]
        if (
            service_id is not None
            and type_ in SERVICE_EVENTS
            and tx.service_webhooks.get(service_id) is not None
        ):
            endpoints.append(endpoint_name(service_id))
        if not endpoints:
            return None
        tx.outbox.add(event, endpoints, now)
        return event


ADVICE = {
    EventType.CERTIFICATE_EXPIRING: (
        "renew it: the renewal agent does so by itself; by hand, `pkiforge cert renew SERIAL` "
        "or POST /api/v1/certificates/SERIAL/renew"
    ),
    EventType.CERTIFICATE_RENEWED: (
        "deploy the new certificate where the service does not reload it by itself"
    ),
    EventType.CERTIFICATE_REVOKED: (
        "stop using this certificate: relying parties refuse it; request a new one"
    ),
}


def certificate_data(
    type_: EventType, record: CertificateRecord, now: dt.datetime, **extra: Any
) -> dict[str, Any]:
    """The `data` of a certificate event: which certificate, until when, and what to do."""
    data: dict[str, Any] = {
        "service": record.service_id,
        "serial": record.serial_hex,
        "common_name": record.common_name,
        "names": list(record.names),
        "issuer": record.issuer,
        "not_after": record.not_after.isoformat() if record.not_after else None,
        "days_left": (record.not_after - now).days if record.not_after else None,
        **extra,
    }
    if type_ in ADVICE:
        data["action"] = ADVICE[type_]
    return data


@dataclass(frozen=True)
class DeliveryReport:
    """What one pass of `deliver_due` did."""

    delivered: int = 0
    retrying: int = 0
    failed: int = 0
    errors: tuple[str, ...] = field(default=())

    @property
    def attempted(self) -> int:
        return self.delivered + self.retrying + self.failed

    def summary(self) -> dict[str, Any]:
        """Plain values for the scheduler's job state."""
        return {
            "delivered": self.delivered,
            "retrying": self.retrying,
            "failed": self.failed,
            "errors": list(self.errors[:20]),
        }


@dataclass
class NotificationService:
    """Delivery of recorded events, and the operator's view of it."""

    store: Store
    clock: Clock
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    batch: int = 100

    def deliver_due(self, sender: Sender) -> DeliveryReport:
        """Send the deliveries due now, once each, one at a time; record what became of each.

        Each is taken (held for `retry.hold`) just before it is sent, so that a slow
        subscriber cannot make the hold of others run out while they wait their turn.
        """
        delivered = retrying = failed = 0
        errors: list[str] = []
        for _ in range(self.batch):
            now = self.clock.now()
            with self.store.transaction() as tx:
                taken = tx.outbox.claim_due(now, now + self.retry.hold, 1)
            if not taken:
                break
            delivery = taken[0]
            attempts = delivery.attempts + 1
            try:
                sender.send(delivery.endpoint, delivery.event)
            except DeliveryFailed as exc:
                error = str(exc)
                retry_at = self.retry.retry_at(attempts, self.clock.now())
                with self.store.transaction() as tx:
                    tx.outbox.attempt_failed(delivery.delivery_id, attempts, error, retry_at)
                errors.append(f"{delivery.event.event_id} to {delivery.endpoint}: {error}")
                if retry_at is None:
                    failed += 1
                    log.error(
                        "notification %s to %s failed for good after %d attempts: %s",
                        delivery.event.event_id,
                        delivery.endpoint,
                        attempts,
                        error,
                    )
                else:
                    retrying += 1
                continue
            with self.store.transaction() as tx:
                tx.outbox.delivered(delivery.delivery_id, self.clock.now(), attempts)
            delivered += 1
        return DeliveryReport(delivered, retrying, failed, tuple(errors))

    def list(self, status: DeliveryStatus | None = None, limit: int = 100) -> list[Delivery]:
        with self.store.transaction(readonly=True) as tx:
            return tx.outbox.list(status, limit)

    def stats(self) -> OutboxStats:
        """Raises StoreUnavailable."""
        with self.store.transaction(readonly=True) as tx:
            return tx.outbox.stats()

    def retry_failed(self, delivery_ids: Sequence[int] | None = None) -> int:
        """Send failed deliveries again from now (these, or all); returns how many."""
        with self.store.transaction() as tx:
            return tx.outbox.retry(delivery_ids, self.clock.now())

    def send_now(self, delivery_ids: Sequence[int]) -> RetryCounts:
        """Make these deliveries due now: a failed one pending again with its attempts counted
        afresh, a pending one due now (not before a deliverer's hold on it ends).

        Raises:
            NotFound: an id names no delivery. Conflict: one was delivered already. Either
            way nothing changed.
        """
        ids = sorted(set(delivery_ids))
        with self.store.transaction() as tx:
            found = tx.outbox.statuses(ids)
            unknown = [str(i) for i in ids if i not in found]
            if unknown:
                raise NotFound(
                    f"no delivery {', '.join(unknown)} (see `pkiforge notifications list`)",
                    field="ids",
                )
            done = [str(i) for i in ids if found[i] is DeliveryStatus.DELIVERED]
            if done:
                raise Conflict(f"delivery {', '.join(done)} was delivered already", field="ids")
            now = self.clock.now()
            failed = [i for i in ids if found[i] is DeliveryStatus.FAILED]
            pending = [i for i in ids if found[i] is DeliveryStatus.PENDING]
            return RetryCounts(
                failed=tx.outbox.retry(failed, now) if failed else 0,
                pending=tx.outbox.hasten(pending, now) if pending else 0,
            )


@dataclass(frozen=True)
class RetryCounts:
    """What `send_now` did: failed deliveries made pending, pending ones made due now."""

    failed: int
    pending: int
