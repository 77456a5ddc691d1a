"""How a client connects: base URL, TLS (mTLS identity or CA bundle), timeout, request signing."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx

from pkiforge.client.errors import Unreachable, UntrustedServer, transport_error
from pkiforge.client.tls import Identity, client_ssl_context

__all__ = ["ClientOptions", "unreachable"]

Verify = ssl.SSLContext | Path | str | bool | None


@dataclass(frozen=True)
class ClientOptions:
    """Everything needed to build an httpx client for the API; immutable and shareable."""

    base_url: str
    identity: Identity | None = None
    verify: Verify = None
    timeout: float = 10.0
    auth: httpx.Auth | None = None

    def ssl_context(self) -> ssl.SSLContext | bool:
        """The TLS context: this CA only, with the identity's certificate when there is one.

        Raises:
            FileNotFoundError / ssl.SSLError: an identity or CA file is missing or unusable.
        """
        if isinstance(self.verify, ssl.SSLContext):
            return self.verify
        if isinstance(self.verify, str | Path):
            return client_ssl_context(self.identity, ca=Path(self.verify))
        if self.identity is not None:
            return client_ssl_context(self.identity)
        return self.verify is not False

    def httpx_arguments(self) -> dict[str, Any]:
        """Keyword arguments shared by `httpx.Client` and `httpx.AsyncClient`."""
        return {
            "base_url": self.base_url.rstrip("/"),
            "verify": self.ssl_context(),
            "timeout": self.timeout,
            "auth": self.auth,
            "headers": {"Accept": "application/json, application/problem+json;q=0.9, */*;q=0.5"},
            "follow_redirects": False,
        }

    def with_identity(self, identity: Identity) -> ClientOptions:
        return replace(self, identity=identity)


def unreachable(base_url: str, exc: httpx.TransportError) -> Unreachable | UntrustedServer:
    """A clear error for a request that never got an answer (`transport_error`)."""
    return transport_error(base_url, exc)
