"""/api/v1/discovery: find services, their endpoints and current certificates (for mTLS)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from pkiforge.api.callers import CallerDep
from pkiforge.api.deps import StateDep
from pkiforge.api.problems import responses
from pkiforge.api.schemas.certificates import chain_pem, pem
from pkiforge.api.schemas.services import DiscoveredService, ServiceCertificate, discovered
from pkiforge.ca.authorization import Operation, require
from pkiforge.errors import NotFound
from pkiforge.x509.names import spiffe_id

router = APIRouter(prefix="/api/v1/discovery", tags=["discovery"], responses=responses(404))
ServiceId = Annotated[str, Path(min_length=1, max_length=128)]


@router.get("/services", response_model=list[DiscoveredService])
def discover_services(
    caller: CallerDep,
    state: StateDep,
    type: Annotated[str | None, Query(max_length=64, description="service_type")] = None,
) -> list[DiscoveredService]:
    """Registered services, optionally of one type (needs the `discover` operation)."""
    require(caller, Operation.DISCOVER)
    registry = state.api.registry
    return [discovered(s, registry.current_certificate(s.service_id)) for s in registry.list(type)]


@router.get("/services/{service_id}", response_model=DiscoveredService)
def discover_service(
    service_id: ServiceId, caller: CallerDep, state: StateDep
) -> DiscoveredService:
    """One service's endpoints and current certificate."""
    require(caller, Operation.DISCOVER)
    registry = state.api.registry
    return discovered(registry.get(service_id), registry.current_certificate(service_id))


@router.get("/services/{service_id}/cert", response_model=ServiceCertificate)
def discover_certificate(
    service_id: ServiceId, caller: CallerDep, state: StateDep
) -> ServiceCertificate:
    """What a peer needs for mTLS to the service: its certificate, chain, SPIFFE id, endpoints."""
    require(caller, Operation.DISCOVER)
    registry = state.api.registry
    service = registry.get(service_id)
    cert = registry.current_certificate(service_id)
    if cert is None or cert.certificate is None:
        raise NotFound(f"service {service_id!r} has no active certificate", field="service_id")
    return ServiceCertificate(
        serial=cert.serial_hex,
        certificate_pem=pem([cert.certificate]),
        chain_pem=chain_pem(tuple(state.pki.hierarchy.chain(cert.issuer))),
        not_after=cert.not_after,
        spiffe_id=spiffe_id(state.pki.ctx.config.trust_domain, service_id).value,
        endpoints=list(service.endpoints),
    )
