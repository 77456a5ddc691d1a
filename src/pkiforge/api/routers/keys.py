"""/api/v1/keys: the request-signing key registry, its usage and events, and whoami.

Every route accepts an mTLS client certificate or a signed request (`ActorDep`). Managing
keys needs a whitelisted service with the `admin` operation (or a `keys` operation, once the
whitelist knows it): see `require_key_admin`. A signing key may read and revoke itself.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from pkiforge.actor import Actor
from pkiforge.api.core_calls import core_call
from pkiforge.api.deps import StateDep
from pkiforge.api.problems import responses
from pkiforge.api.schemas.common import TEXT_PATTERN
from pkiforge.api.schemas.keys import (
    EventOut,
    KeyOut,
    KeyPage,
    KeyRegistrationIn,
    RevocationIn,
    UsageOut,
    WhoAmIOut,
    event_out,
    key_out,
    usage_out,
)
from pkiforge.api.signed import ActorDep
from pkiforge.api.state import AppState
from pkiforge.api.storage import NEW_WRITES
from pkiforge.auth.keys import KeyStatus
from pkiforge.auth.registry import MAX_OFFSET, MAX_PAGE, MAX_USAGE_DAYS, KeyQuery
from pkiforge.auth.verify import VerifiedIdentity
from pkiforge.ca.authorization import Operation
from pkiforge.errors import PermissionDenied

router = APIRouter(prefix="/api/v1/keys", tags=["keys"], responses=responses(400, 404, 409))
KeyId = Annotated[str, Path(min_length=1, max_length=64)]


def require_key_admin(state: AppState, actor: Actor) -> None:
    """The authorization hook of key management: a whitelisted admin (or `keys`) service.

    Raises:
        PermissionDenied: any other caller, including every signing key.
    """
    if actor.kind == "service":
        policy = state.whitelist.policy_for(actor.id)
        if policy is not None and (policy.is_admin or Operation.KEYS in policy.operations):
            return
    raise PermissionDenied(
        f"{actor} may not manage signing keys: needs the admin (or keys) operation",
        reason="operation",
    )


def _self_or_admin(state: AppState, actor: Actor, key_id: str) -> None:
    if actor.kind == "key" and actor.id == key_id:
        return
    require_key_admin(state, actor)


@router.get("/whoami", response_model=WhoAmIOut)
async def whoami(actor: ActorDep, request: Request) -> WhoAmIOut:
    """Who this request authenticated as: a signing key or an mTLS service."""
    identity = getattr(request.state, "identity", None)
    if actor.kind == "key" and isinstance(identity, VerifiedIdentity):
        return WhoAmIOut(
            kind="key",
            id=identity.key_id,
            client_name=identity.client_name,
            algorithm=identity.algorithm,
            scheme=identity.scheme,
        )
    return WhoAmIOut(kind=actor.kind, id=actor.id, scheme="mtls")


@router.post("", status_code=201, response_model=KeyOut, dependencies=[NEW_WRITES])
@core_call
def register_key(
    body: KeyRegistrationIn, actor: ActorDep, state: StateDep, response: Response
) -> KeyOut:
    """Register a PEM public key (RSA >= 2048, P-256, P-384, Ed25519) for a client."""
    require_key_admin(state, actor)
    key = state.signing.registry.register(body.registration(), actor)
    response.headers["Location"] = f"/api/v1/keys/{key.key_id}"
    return key_out(key)


@router.get("", response_model=KeyPage)
def list_keys(
    actor: ActorDep,
    state: StateDep,
    status: KeyStatus | None = None,
    client_name: Annotated[str | None, Query(max_length=255)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> KeyPage:
    """Registered keys, newest first, filtered by status and client name."""
    require_key_admin(state, actor)
    query = KeyQuery(status=status, client_name=client_name, limit=limit, offset=offset)
    keys, more = state.signing.registry.page(query)
    return KeyPage(
        items=[key_out(k) for k in keys],
        limit=limit,
        offset=offset,
        next_offset=offset + limit if more else None,
    )


@router.get("/events", response_model=list[EventOut])
def list_events(
    actor: ActorDep,
    state: StateDep,
    key_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> list[EventOut]:
    """Recent authentication events, newest first (of one key with `key_id`)."""
    if key_id is None:
        require_key_admin(state, actor)
    else:
        _self_or_admin(state, actor, key_id)
    return [event_out(e) for e in state.signing.registry.events(key_id, limit)]


@router.get("/{key_id}", response_model=KeyOut)
def get_key(key_id: KeyId, actor: ActorDep, state: StateDep) -> KeyOut:
    """One registered key (admins, or the key itself)."""
    _self_or_admin(state, actor, key_id)
    return key_out(state.signing.registry.get(key_id))


@router.get("/{key_id}/usage", response_model=list[UsageOut])
def key_usage(
    key_id: KeyId,
    actor: ActorDep,
    state: StateDep,
    days: Annotated[int, Query(ge=1, le=MAX_USAGE_DAYS)] = 30,
) -> list[UsageOut]:
    """Successes and failures per UTC day, oldest first (days without requests are left out)."""
    _self_or_admin(state, actor, key_id)
    return [usage_out(u) for u in state.signing.registry.usage(key_id, days)]


@router.post("/{key_id}/revoke", response_model=KeyOut)
@core_call
def revoke_key(key_id: KeyId, body: RevocationIn, actor: ActorDep, state: StateDep) -> KeyOut:
    """Revoke a key for good; this replica refuses it at once, the others within 5 s."""
    _self_or_admin(state, actor, key_id)
    return key_out(state.signing.registry.revoke(key_id, body.reason, actor))


@router.delete("/{key_id}", response_model=KeyOut)
@core_call
def delete_key(
    key_id: KeyId,
    actor: ActorDep,
    state: StateDep,
    reason: Annotated[str | None, Query(max_length=255, pattern=TEXT_PATTERN)] = None,
) -> KeyOut:
    """The same as revoke (the key stays on record, revoked, for the audit trail)."""
    _self_or_admin(state, actor, key_id)
    return key_out(state.signing.registry.revoke(key_id, reason or "deleted", actor))
