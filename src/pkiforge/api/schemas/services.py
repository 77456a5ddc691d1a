"""Wire shapes of /api/v1/services and /api/v1/discovery."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints

from pkiforge.api.schemas.common import Uri, documented
from pkiforge.ca.events import SERVICE_EVENTS
from pkiforge.ca.models import CertificateRecord
from pkiforge.ca.registry_models import ServiceChanges, ServiceRecord, ServiceWebhook

Endpoint = Annotated[Uri, StringConstraints(min_length=1, max_length=2048)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=260)]
Text = Annotated[str, StringConstraints(min_length=1, max_length=255)]
# an https URL with a host name or IPv4 address, a port and a path, no user info or fragment
WEBHOOK_URL_PATTERN = r"^https://[A-Za-z0-9.-]+(:[1-9][0-9]{0,3})?(/[!-\"$-~]*)?$"
WebhookUrl = Annotated[
    str,
    StringConstraints(min_length=1, max_length=2048),
    Field(json_schema_extra=documented(WEBHOOK_URL_PATTERN)),
]
Kind = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class ServiceRegistration(BaseModel):
    model_config = ConfigDict(extra="forbid")

    service_id: str = Field(min_length=1, max_length=128)
    service_name: Text
    service_type: Kind | None = None
    endpoints: list[Endpoint] = Field(default_factory=list, max_length=50)
    names: list[Name] = Field(
        default_factory=list,
        max_length=100,
        description="DNS/IP names (or patterns like *.billing.internal) the service may hold",
    )
    health_check_url: Endpoint | None = None
    owner: dict[str, Any] = Field(default_factory=dict)
    auto_renew: StrictBool = True  # not 0 or "yes": the document says boolean

    def record(self) -> ServiceRecord:
        epoch = dt.datetime.fromtimestamp(0, dt.UTC)  # the use-case sets the real times
        return ServiceRecord(
            service_id=self.service_id,
            service_name=self.service_name,
            created_at=epoch,
            updated_at=epoch,
            service_type=self.service_type,
            endpoints=tuple(self.endpoints),
            names=tuple(self.names),
            health_check_url=self.health_check_url,
            owner=self.owner,
            auto_renew=self.auto_renew,
        )


class ServiceUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    service_name: Text | None = None
    service_type: Kind | None = None
    endpoints: list[Endpoint] | None = Field(default=None, max_length=50)
    names: list[Name] | None = Field(default=None, max_length=100)
    health_check_url: Endpoint | None = None
    owner: dict[str, Any] | None = None
    auto_renew: StrictBool | None = None

    def changes(self) -> ServiceChanges:
        return ServiceChanges(
            service_name=self.service_name,
            service_type=self.service_type,
            endpoints=tuple(self.endpoints) if self.endpoints is not None else None,
            names=tuple(self.names) if self.names is not None else None,
            health_check_url=self.health_check_url,
            owner=self.owner,
            auto_renew=self.auto_renew,
        )


class ServiceOut(BaseModel):
    service_id: str
    service_name: str
    service_type: str | None
    endpoints: list[str]
    names: list[str]
    health_check_url: str | None
    owner: dict[str, Any]
    auto_renew: bool
    status: str
    created_at: dt.datetime
    updated_at: dt.datetime
    last_seen: dt.datetime | None
    certificate_serial: str | None
    certificate_expiry: dt.datetime | None


class WebhookSettingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # the document promises what any server takes; the core checks the URL itself (a
    # server with notifications.allow_loopback_http also takes plain http to loopback)
    url: WebhookUrl = Field(
        description=(
            "https URL the service's certificate events are POSTed to (plain http only to a "
            "loopback address, where the server's notifications.allow_loopback_http allows it)"
        )
    )
    rotate_secret: StrictBool = Field(
        default=False, description="make a new secret (the old one stops being used at once)"
    )


class WebhookOut(BaseModel):
    service_id: str
    url: str
    events: list[str]
    created_at: dt.datetime
    updated_at: dt.datetime
    secret: str | None = Field(
        default=None,
        description="the Standard Webhooks secret (whsec_...), only in the answer that made it",
    )


def webhook_out(hook: ServiceWebhook, secret: str | None = None) -> WebhookOut:
    return WebhookOut(
        service_id=hook.service_id,
        url=hook.url,
        events=sorted(e.value for e in SERVICE_EVENTS),
        created_at=hook.created_at,
        updated_at=hook.updated_at,
        secret=secret,
    )


class DiscoveredService(BaseModel):
    service_id: str
    service_name: str
    service_type: str | None
    endpoints: list[str]
    certificate_serial: str | None
    certificate_expiry: dt.datetime | None
    status: str


class ServiceCertificate(BaseModel):
    serial: str
    certificate_pem: str
    chain_pem: str
    not_after: dt.datetime | None
    spiffe_id: str
    endpoints: list[str]


def service_out(s: ServiceRecord, cert: CertificateRecord | None) -> ServiceOut:
    return ServiceOut(
        service_id=s.service_id,
        service_name=s.service_name,
        service_type=s.service_type,
        endpoints=list(s.endpoints),
        names=list(s.names),
        health_check_url=s.health_check_url,
        owner=s.owner,
        auto_renew=s.auto_renew,
        status=s.status,
        created_at=s.created_at,
        updated_at=s.updated_at,
        last_seen=s.last_seen,
        certificate_serial=cert.serial_hex if cert else None,
        certificate_expiry=cert.not_after if cert else None,
    )


def discovered(s: ServiceRecord, cert: CertificateRecord | None) -> DiscoveredService:
    return DiscoveredService(
        service_id=s.service_id,
        service_name=s.service_name,
        service_type=s.service_type,
        endpoints=list(s.endpoints),
        certificate_serial=cert.serial_hex if cert else None,
        certificate_expiry=cert.not_after if cert else None,
        status=s.status,
    )
