"""Webhook delivery, signed as the Standard Webhooks specification says.

Each request is a POST of the event's JSON with three headers: `webhook-id` (the event id,
the same on every retry, so that receivers deduplicate), `webhook-timestamp` (Unix seconds of
this attempt) and `webhook-signature` (`v1,` + base64 HMAC-SHA256 over
`{id}.{timestamp}.{body}` with the endpoint's secret, the bytes that `whsec_` prefixes in
base64). Receivers verify with any Standard Webhooks library. A 2xx answer is delivered;
anything else, a timeout or a refused connection is a failed attempt.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import httpx

from pkiforge.ca.events import Event
from pkiforge.ca.notifications import DeliveryFailed
from pkiforge.ca.service_webhooks import SECRET_PREFIX as PREFIX
from pkiforge.ca.service_webhooks import new_secret as new_secret
from pkiforge.errors import InvalidInput


def secret_key(secret: str, *, name: str) -> bytes:
    """The HMAC key of a `whsec_...` secret.

    Raises:
        InvalidInput: not a `whsec_` base64 secret of at least 24 bytes (naming the webhook,
        never showing the value).
    """
    text = secret.strip()
    if not text.startswith(PREFIX):
        raise InvalidInput(f"webhook {name!r}: the secret must start with {PREFIX!r}")
    try:
        key = base64.b64decode(text[len(PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(f"webhook {name!r}: the secret is not valid base64") from None
    if len(key) < 24:
        raise InvalidInput(f"webhook {name!r}: the secret must hold at least 24 bytes")
    return key


def signature(key: bytes, event_id: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(key, f"{event_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


@dataclass(frozen=True)
class Endpoint:
    name: str
    url: str
    key: bytes


class WebhookSender:
    """The `Sender` of ca/notifications.py over HTTP(S), one client for every endpoint."""

    def __init__(
        self,
        endpoints: Mapping[str, Endpoint],
        *,
        timeout: float = 10.0,
        client: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
        resolve: Callable[[str], Endpoint | None] | None = None,
    ) -> None:
        self.endpoints = dict(endpoints)
        # endpoints not configured but looked up when sent (a service's own webhook, read
        # from its registry entry each time: a changed URL or secret applies at once)
        self._resolve = resolve
        self._client = client or httpx.Client(timeout=timeout, follow_redirects=False)
        self._clock = clock

    def send(self, endpoint: str, event: Event) -> None:
        target = self.endpoints.get(endpoint)
        if target is None and self._resolve is not None:
            target = self._resolve(endpoint)
        if target is None:
            raise DeliveryFailed(f"no webhook named {endpoint!r} is configured any more")
        body = json.dumps(event.body(), separators=(",", ":"), sort_keys=True).encode()
        timestamp = int(self._clock())
        headers = {
            "content-type": "application/json",
            "user-agent": "pkiforge-webhooks",
            "webhook-id": event.event_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature(target.key, event.event_id, timestamp, body),
        }
        try:
            answer = self._client.post(target.url, content=body, headers=headers)
        except httpx.TimeoutException:
            raise DeliveryFailed("timed out") from None
        except httpx.HTTPError as exc:
            raise DeliveryFailed(f"could not connect ({type(exc).__name__})") from None
        if not answer.is_success:
            raise DeliveryFailed(f"answered HTTP {answer.status_code}")

    def close(self) -> None:
        self._client.close()
