"""/api/v1/services: register, list, show and update services in the registry, and set each
service's own webhook."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from pkiforge.api.callers import CallerDep
from pkiforge.api.core_calls import core_call
from pkiforge.api.deps import StateDep
from pkiforge.api.problems import responses
from pkiforge.api.schemas.services import (
    ServiceOut,
    ServiceRegistration,
    ServiceUpdate,
    WebhookOut,
    WebhookSettingIn,
    service_out,
    webhook_out,
)
from pkiforge.api.state import AppState
from pkiforge.api.storage import NEW_WRITES
from pkiforge.ca.authorization import (
    Operation,
    require,
    require_listed,
    require_self_or_admin,
)
from pkiforge.ca.registry_models import ServiceRecord

router = APIRouter(prefix="/api/v1/services", tags=["services"], responses=responses(400, 404, 409))
ServiceId = Annotated[str, Path(min_length=1, max_length=128)]


def _out(state: AppState, service: ServiceRecord) -> ServiceOut:
    return service_out(service, state.api.registry.current_certificate(service.service_id))


@router.post("/register", status_code=201, response_model=ServiceOut, dependencies=[NEW_WRITES])
@core_call
def register_service(
    body: ServiceRegistration, caller: CallerDep, state: StateDep, response: Response
) -> ServiceOut:
    """Register a service (itself; any service as admin) with its endpoints and names."""
    service = state.api.registry.register(caller, body.record())
    response.headers["Location"] = f"/api/v1/services/{service.service_id}"
    return _out(state, service)


@router.get("", response_model=list[ServiceOut])
def list_services(caller: CallerDep, state: StateDep) -> list[ServiceOut]:
    """Every registered service (needs the `list` operation)."""
    require(caller, Operation.LIST)
    return [_out(state, s) for s in state.api.registry.list()]


@router.get("/{service_id}", response_model=ServiceOut)
def get_service(service_id: ServiceId, caller: CallerDep, state: StateDep) -> ServiceOut:
    """One service: its own record, or any with the `list` operation."""
    if service_id == caller.service_id:
        require_listed(caller)
    else:
        require(caller, Operation.LIST)
    return _out(state, state.api.registry.get(service_id))


@router.put("/{service_id}", response_model=ServiceOut, dependencies=[NEW_WRITES])
@core_call
def update_service(
    service_id: ServiceId, body: ServiceUpdate, caller: CallerDep, state: StateDep
) -> ServiceOut:
    """Change name, type, endpoints, health-check URL, owner, auto-renew or names."""
    return _out(state, state.api.registry.update(caller, service_id, body.changes()))


@router.put("/{service_id}/webhook", response_model=WebhookOut, dependencies=[NEW_WRITES])
@core_call
def set_webhook(
    service_id: ServiceId, body: WebhookSettingIn, caller: CallerDep, state: StateDep
) -> WebhookOut:
    """Point the service's own webhook at an https URL (the service itself or an admin). The
    answer holds the signing secret the first time, or with `rotate_secret`; never again."""
    require_self_or_admin(caller, service_id, "set the webhook")
    hook, secret = state.pki.service_webhooks.set(
        caller.actor, service_id, body.url, rotate_secret=body.rotate_secret
    )
    return webhook_out(hook, secret)


@router.get("/{service_id}/webhook", response_model=WebhookOut, response_model_exclude_none=True)
def get_webhook(service_id: ServiceId, caller: CallerDep, state: StateDep) -> WebhookOut:
    """The service's own webhook, without its secret (the service itself or an admin)."""
    require_self_or_admin(caller, service_id, "see the webhook")
    return webhook_out(state.pki.service_webhooks.get(service_id))


@router.delete("/{service_id}/webhook", status_code=204, dependencies=[NEW_WRITES])
@core_call
def delete_webhook(service_id: ServiceId, caller: CallerDep, state: StateDep) -> Response:
    """Stop sending the service's events to its webhook (the service itself or an admin)."""
    require_self_or_admin(caller, service_id, "remove the webhook")
    state.pki.service_webhooks.clear(caller.actor, service_id)
    return Response(status_code=204)
