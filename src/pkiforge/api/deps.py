"""Dependencies: the app state, the caller's verified identity, the client address."""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import unquote

from cryptography import x509
from fastapi import Depends, Request

from pkiforge.api.state import AppState
from pkiforge.auth.mtls import ServiceIdentity
from pkiforge.errors import AuthenticationFailed, InvalidInput


def app_state(request: Request) -> AppState:
    """The application's state, for code that takes the request itself."""
    state: AppState = request.app.state.pkiforge
    return state


async def get_state(request: Request) -> AppState:
    return app_state(request)


StateDep = Annotated[AppState, Depends(get_state)]


def peer_address(request: Request) -> str | None:
    """The connection's peer (with the PROXY protocol, the client the balancer named)."""
    return request.client.host if request.client else None


def client_host(request: Request, state: AppState) -> str | None:
    """The client's address: the peer's, or from a proxy in `server.trusted_proxies` the last
    address in `server.client_address_header`, the one that proxy wrote (any before it came
    from the client and are not believed).

    Raises:
        InvalidInput: a trusted proxy's header does not end in an IP address.
    """
    peer = peer_address(request)
    if not state.is_trusted_proxy(peer):
        return peer
    name = state.settings.server.client_address_header
    values = request.headers.getlist(name)
    if not values:
        return peer
    last = values[-1].rsplit(",", 1)[-1].strip()
    try:
        return str(ipaddress.ip_address(last))
    except ValueError:
        raise InvalidInput(
            f"{name} from the proxy does not end in an IP address", field=name
        ) from None


async def client_address(request: Request, state: StateDep) -> str | None:
    return client_host(request, state)


AddressDep = Annotated[str | None, Depends(client_address)]


def peer_certificate(scope: Any) -> x509.Certificate | None:
    """The client certificate of this request's connection, if one was presented: the ASGI
    TLS extension's `client_cert_chain`, which the server (server/tls.py) fills in."""
    chain = scope.get("extensions", {}).get("tls", {}).get("client_cert_chain") or []
    if not chain:
        return None
    return _parsed(chain[0])


@functools.lru_cache(maxsize=4096)
def _parsed(pem: str) -> x509.Certificate:
    # a keep-alive connection sends the same certificate with every request
    return x509.load_pem_x509_certificate(pem.encode())


def client_certificate(request: Request, state: StateDep) -> x509.Certificate | None:
    """The TLS peer certificate, or one forwarded by a configured proxy (never anyone else's)."""
    cert = peer_certificate(request.scope)
    if cert is not None:
        return cert
    header = request.headers.get(state.settings.server.client_cert_header)
    if header and state.is_trusted_proxy(peer_address(request)):
        try:
            return x509.load_pem_x509_certificate(unquote(header).encode())
        except ValueError:
            raise AuthenticationFailed(
                "forwarded client certificate is not a PEM certificate", reason="bad-forwarded-cert"
            ) from None
    return None


def verify_service(request: Request, state: AppState) -> ServiceIdentity:
    """The calling service, from its verified client certificate; 401 otherwise."""
    identity = state.identities.verify(client_certificate(request, state))
    request.state.identity = identity
    state.api.last_seen.seen(identity.service_id)
    return identity


IdentityVerifier = Callable[[Request, AppState], ServiceIdentity]


async def mtls_verifier() -> IdentityVerifier:
    """How this app learns the calling service: `verify_service` (its client certificate).

    A dependency, so that every route that needs the service gets it the same way, whether it
    takes `ServiceDep` or resolves the service itself (`ActorDep`, the enrollment caller), and
    so that an app can be given another way (`app.dependency_overrides[mtls_verifier]`).
    """
    return verify_service


VerifierDep = Annotated[IdentityVerifier, Depends(mtls_verifier)]


def service_identity(request: Request, state: StateDep, verify: VerifierDep) -> ServiceIdentity:
    """The calling service, as a dependency; 401 without a valid client certificate."""
    return verify(request, state)


ServiceDep = Annotated[ServiceIdentity, Depends(service_identity)]
