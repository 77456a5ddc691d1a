"""ACME objects as plain data (RFC 8555 §7.1): accounts, orders, authorizations, challenges.

The status values and the transitions between them (§7.1.6) are here; storage turns rows into
these (store/acme_repos.py), the router renders them as the RFC's JSON.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    PENDING = "pending"
    READY = "ready"
    PROCESSING = "processing"
    VALID = "valid"
    INVALID = "invalid"
    DEACTIVATED = "deactivated"
    EXPIRED = "expired"
    REVOKED = "revoked"


@dataclass(frozen=True)
class ExternalKey:
    """An external account binding key (RFC 8555 §7.3.4) that binds accounts to a service."""

    kid: str
    service_id: str
    mac_key: bytes
    created_at: dt.datetime
    account_id: str | None = None  # set when an account used it: each key binds one account


@dataclass(frozen=True)
class Account:
    account_id: str
    thumbprint: str  # RFC 7638, of the account key
    jwk: dict[str, Any]
    service_id: str  # the service its external binding named: it orders as that service
    status: Status
    contact: tuple[str, ...]
    created_at: dt.datetime
    eab_kid: str | None = None


@dataclass(frozen=True)
class Identifier:
    """An order's identifier; only `dns` is served for now."""

    type: str
    value: str

    def json(self) -> dict[str, str]:
        return {"type": self.type, "value": self.value}


@dataclass(frozen=True)
class Problem:
    """An error stored on an order or challenge (RFC 8555 §6.7): its type suffix and detail."""

    kind: str
    detail: str
    status: int = 400

    def json(self) -> dict[str, Any]:
        return {
            "type": f"urn:ietf:params:acme:error:{self.kind}",
            "detail": self.detail,
            "status": self.status,
        }


@dataclass(frozen=True)
class Challenge:
    challenge_id: str
    authz_id: str
    type: str
    token: str
    status: Status
    validated_at: dt.datetime | None = None
    error: Problem | None = None
    started_at: dt.datetime | None = None  # when the running validation started


@dataclass(frozen=True)
class Authorization:
    authz_id: str
    order_id: str
    identifier: Identifier
    status: Status
    expires_at: dt.datetime
    challenges: Sequence[Challenge] = field(default_factory=tuple)
    wildcard: bool = False


@dataclass(frozen=True)
class Order:
    order_id: str
    account_id: str
    status: Status
    identifiers: tuple[Identifier, ...]
    authz_ids: tuple[str, ...]
    expires_at: dt.datetime
    issuer: str
    created_at: dt.datetime
    certificate_serial: int | None = None
    error: Problem | None = None


def order_status(order: Order, authz: Sequence[Authorization], now: dt.datetime) -> Status:
    """What the order's status is now, given its authorizations (RFC 8555 §7.1.6).

    pending -> ready once every authorization is valid; invalid as soon as one is invalid or
    the order expired before it was finalized; processing and valid are set by finalize.
    """
    if order.status in (Status.VALID, Status.INVALID, Status.PROCESSING):
        return order.status
    if now >= order.expires_at:
        return Status.INVALID
    states = {a.status for a in authz}
    if states & {Status.INVALID, Status.DEACTIVATED, Status.EXPIRED, Status.REVOKED}:
        return Status.INVALID
    if authz and states == {Status.VALID}:
        return Status.READY
    return Status.PENDING


def authz_status(authz: Authorization, now: dt.datetime) -> Status:
    """An authorization's status: expired once past its time while still pending."""
    if authz.status is Status.PENDING and now >= authz.expires_at:
        return Status.EXPIRED
    return authz.status
