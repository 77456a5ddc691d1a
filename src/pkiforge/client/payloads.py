"""Request bodies of the API as typed values; `to_json()` gives exactly what the server expects."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CertificateRequest", "ServiceRegistration", "ServiceUpdate"]


@dataclass(frozen=True)
class CertificateRequest:
    """`POST /certificates/request`: a CSR (preferred) or names for a server-made key."""

    csr: str | None = None
    service_id: str | None = None
    common_name: str | None = None
    san_dns: tuple[str, ...] = ()
    san_ip: tuple[str, ...] = ()
    san_uri: tuple[str, ...] = ()
    profile: str | None = None  # None: the server's default (an enrollment token's own profile)
    issuer: str | None = None
    validity_days: int | None = None
    key_type: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "csr": self.csr,
            "service_id": self.service_id,
            "common_name": self.common_name,
            "san_dns": list(self.san_dns),
            "san_ip": list(self.san_ip),
            "san_uri": list(self.san_uri),
            **({"profile": self.profile} if self.profile is not None else {}),
            "issuer": self.issuer,
            "validity_days": self.validity_days,
            "key_type": self.key_type,
            "metadata": dict(self.metadata),
        }


@dataclass(frozen=True)
class ServiceRegistration:
    """`POST /services/register`: who a service is and where it listens."""

    service_id: str
    service_name: str
    service_type: str | None = None
    endpoints: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    health_check_url: str | None = None
    owner: Mapping[str, Any] = field(default_factory=dict)
    auto_renew: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            "service_id": self.service_id,
            "service_name": self.service_name,
            "service_type": self.service_type,
            "endpoints": list(self.endpoints),
            "names": list(self.names),
            "health_check_url": self.health_check_url,
            "owner": dict(self.owner),
            "auto_renew": self.auto_renew,
        }


@dataclass(frozen=True)
class ServiceUpdate:
    """`PUT /services/{id}`: a partial update; fields left None are not sent."""

    service_name: str | None = None
    service_type: str | None = None
    endpoints: tuple[str, ...] | None = None
    names: tuple[str, ...] | None = None
    health_check_url: str | None = None
    owner: Mapping[str, Any] | None = None
    auto_renew: bool | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is not None:
                out[f.name] = list(value) if isinstance(value, tuple) else value
        if isinstance(self.owner, Mapping):
            out["owner"] = dict(self.owner)
        return out
