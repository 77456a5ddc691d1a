"""ACME objects as RFC 8555 §7.1 JSON, with their URLs."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from pkiforge.acme.models import Account, Authorization, Challenge, Order, Status


def rfc3339(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Urls:
    """The URLs of one issuer's ACME server, under `base` (scheme://host[:port])."""

    base: str
    issuer: str

    @property
    def root(self) -> str:
        return f"{self.base}/acme/{self.issuer}"

    def of(self, kind: str, ident: str = "") -> str:
        return f"{self.root}/{kind}/{ident}" if ident else f"{self.root}/{kind}"

    def account_id(self, kid: str | None) -> str | None:
        """The account id of a kid URL of this issuer; None for any other."""
        prefix = self.of("account") + "/"
        if kid is None or not kid.startswith(prefix):
            return None
        return kid[len(prefix) :] or None

    def directory(self, *, eab_required: bool, profile: str) -> dict[str, Any]:
        return {
            "newNonce": self.of("new-nonce"),
            "newAccount": self.of("new-account"),
            "newOrder": self.of("new-order"),
            "revokeCert": self.of("revoke-cert"),
            "keyChange": self.of("key-change"),
            "meta": {"externalAccountRequired": eab_required, "profiles": {profile: profile}},
        }


def account_json(account: Account, urls: Urls) -> dict[str, Any]:
    return {
        "status": account.status.value,
        "contact": list(account.contact),
        "orders": urls.of("account", account.account_id) + "/orders",
    }


def order_json(order: Order, status: Status, urls: Urls) -> dict[str, Any]:
    body: dict[str, Any] = {
        "status": status.value,
        "expires": rfc3339(order.expires_at),
        "identifiers": [i.json() for i in order.identifiers],
        "authorizations": [urls.of("authz", a) for a in order.authz_ids],
        "finalize": urls.of("order", order.order_id) + "/finalize",
    }
    if order.certificate_serial is not None and status is Status.VALID:
        body["certificate"] = urls.of("cert", order.order_id)
    if order.error is not None:
        body["error"] = order.error.json()
    return body


def challenge_json(challenge: Challenge, urls: Urls) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": challenge.type,
        "url": urls.of("challenge", challenge.challenge_id),
        "token": challenge.token,
        "status": challenge.status.value,
    }
    if challenge.validated_at is not None:
        body["validated"] = rfc3339(challenge.validated_at)
    if challenge.error is not None:
        body["error"] = challenge.error.json()
    return body


def authz_json(authz: Authorization, status: Status, urls: Urls) -> dict[str, Any]:
    return {
        "identifier": authz.identifier.json(),
        "status": status.value,
        "expires": rfc3339(authz.expires_at),
        "challenges": [challenge_json(c, urls) for c in authz.challenges],
    }
