"""Calling a discovered peer: pick the endpoint to dial from what discovery returned."""

from __future__ import annotations

from urllib.parse import urlsplit

from pkiforge.client.models import Service
from pkiforge.errors import InvalidInput

__all__ = ["pick_endpoint"]


def pick_endpoint(service: Service) -> str:
    """The first `https://` endpoint of a service (mTLS needs TLS), without a trailing slash.

    Raises:
        InvalidInput: the service lists no HTTPS endpoint.
    """
    for endpoint in service.endpoints:
        if urlsplit(endpoint).scheme == "https":
            return endpoint.rstrip("/")
    raise InvalidInput(
        f"service {service.service_id!r} has no https:// endpoint to call over mTLS",
        field="endpoints",
    )
