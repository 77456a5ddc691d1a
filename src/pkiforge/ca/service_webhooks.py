"""A service's own webhook: where the events about its certificates go, and their secret.

A service (or an admin on its behalf) sets one URL in its registry entry; pkiforge makes the
endpoint's Standard Webhooks secret, shows it once, and signs every delivery to that URL with
it. The service then gets `certificate.expiring`, `certificate.renewed` and
`certificate.revoked` about its own certificates, besides what the global webhooks get.
"""

from __future__ import annotations

import base64
import ipaddress
import secrets
from urllib.parse import urlsplit

from pkiforge.ca.context import CAContext
from pkiforge.ca.models import Actor
from pkiforge.ca.registry_models import ServiceWebhook
from pkiforge.errors import InvalidInput, NotFound

SECRET_PREFIX = "whsec_"  # noqa: S105  # the Standard Webhooks prefix, not a secret


def new_secret() -> str:
    """A fresh endpoint secret in the Standard Webhooks form (`whsec_` + base64 of 32 bytes)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def check_url(url: str, *, allow_loopback_http: bool = False) -> str:
    """A webhook URL as given, if it is one pkiforge may send to.

    https with a host, no user info, no fragment; plain http only to a loopback address and
    only where `allow_loopback_http` (tests, a receiver on the same machine) says so.

    Raises:
        InvalidInput: naming the field `url` and what is wrong (not the URL's user info).
    """
    if len(url) > 2048:
        raise InvalidInput("the webhook URL is longer than 2048 characters", field="url")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018  # a malformed port raises here
    except ValueError:
        raise InvalidInput("the webhook URL is not a valid URL", field="url") from None
    if parts.scheme not in ("https", "http") or not host:
        raise InvalidInput("the webhook URL must be an https:// URL with a host", field="url")
    if parts.username is not None or parts.password is not None:
        raise InvalidInput("the webhook URL must not hold a user name or password", field="url")
    if parts.fragment:
        raise InvalidInput("the webhook URL must not have a #fragment", field="url")
    if any(c.isspace() or ord(c) < 0x20 for c in url):
        raise InvalidInput(
            "the webhook URL must not hold spaces or control characters", field="url"
        )
    if parts.scheme == "http" and not (allow_loopback_http and _loopback(host)):
        raise InvalidInput(
            "the webhook URL must use https (plain http only to a loopback address, where "
            "notifications.allow_loopback_http allows it)",
            field="url",
        )
    return url


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ServiceWebhooks:
    """Set, show and clear services' webhooks (the caller's right to do so is the edge's check:
    `ca/authorization.py` require_self_or_admin)."""

    def __init__(self, ctx: CAContext, *, allow_loopback_http: bool = False) -> None:
        self.ctx = ctx
        self.allow_loopback_http = allow_loopback_http

    def set(
        self, actor: Actor, service_id: str, url: str, *, rotate_secret: bool = False
    ) -> tuple[ServiceWebhook, str | None]:
        """Point the service's webhook at `url`; returns it and its secret when one was made
        (the first time, or with `rotate_secret`), else None: the secret is shown only then.

        Raises:
            InvalidInput: a URL pkiforge will not send to.
            NotFound: no such service.
        """
        url = check_url(url, allow_loopback_http=self.allow_loopback_http)
        now = self.ctx.clock.now()
        with self.ctx.store.transaction() as tx:
            if tx.services.get(service_id) is None:
                raise NotFound(f"no service {service_id!r} is registered", field="service_id")
            old = tx.service_webhooks.get(service_id)
            made: str | None = None
            if old is None or rotate_secret:
                made = secret = new_secret()
            else:
                secret = old.secret
            created = old.created_at if old is not None else now
            hook = ServiceWebhook(service_id, url, secret, created, now)
            tx.service_webhooks.put(hook)
            self.ctx.audit(
                tx,
                actor,
                "service.webhook.set",
                service_id,
                {"url": url, "new_secret": made is not None},
            )
        return hook, made

    def get(self, service_id: str) -> ServiceWebhook:
        """Raises NotFound: the service has no webhook."""
        with self.ctx.store.transaction(readonly=True) as tx:
            hook = tx.service_webhooks.get(service_id)
        if hook is None:
            raise NotFound(f"service {service_id!r} has no webhook", field="service_id")
        return hook

    def find(self, service_id: str) -> ServiceWebhook | None:
        with self.ctx.store.transaction(readonly=True) as tx:
            return tx.service_webhooks.get(service_id)

    def clear(self, actor: Actor, service_id: str) -> None:
        """Remove the webhook; deliveries still pending to it fail (nowhere to send them).

        Raises:
            NotFound: the service has no webhook.
        """
        with self.ctx.store.transaction() as tx:
            if not tx.service_webhooks.delete(service_id):
                raise NotFound(f"service {service_id!r} has no webhook", field="service_id")
            self.ctx.audit(tx, actor, "service.webhook.clear", service_id, {})
