"""One `Sender` for every endpoint kind: webhooks by name, and email."""

from __future__ import annotations

from pkiforge.ca.events import EMAIL_ENDPOINT, Event
from pkiforge.ca.notifications import DeliveryFailed
from pkiforge.notify.email import EmailSender
from pkiforge.notify.webhooks import WebhookSender


class RoutingSender:
    def __init__(self, webhooks: WebhookSender, email: EmailSender | None = None) -> None:
        self.webhooks = webhooks
        self.email = email

    def send(self, endpoint: str, event: Event) -> None:
        if endpoint == EMAIL_ENDPOINT:
            if self.email is None:
                raise DeliveryFailed("notifications.email is not configured any more")
            self.email.send(endpoint, event)
            return
        self.webhooks.send(endpoint, event)

    def close(self) -> None:
        self.webhooks.close()
        if self.email is not None:
            self.email.close()
