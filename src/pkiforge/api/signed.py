"""`ActorDep`: the caller by mTLS certificate, or else by an RFC 9421 signed request.

A client certificate, when presented, decides alone (a bad one is refused, never skipped in
favour of a signature). Without one, a request that carries `Signature-Input`/`Signature`
(or the legacy `Authorization: PKI`) is verified by the process's one `RequestVerifier` and
yields `Actor("key", key_id, address)`. `ServiceDep` keeps meaning "mTLS only".
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from pkiforge.actor import Actor
from pkiforge.api.deps import (
    AddressDep,
    StateDep,
    VerifierDep,
    client_certificate,
)
from pkiforge.auth.middleware import request_from_scope
from pkiforge.errors import AuthenticationFailed

__all__ = ["ActorDep", "authenticated_actor", "has_signature"]


def has_signature(request: Request) -> bool:
    """Whether the request carries RFC 9421 signature fields or the legacy PKI scheme."""
    headers = request.headers
    if "signature-input" in headers or "signature" in headers:
        return True
    return headers.get("authorization", "").strip().startswith("PKI ")


async def authenticated_actor(
    request: Request, state: StateDep, address: AddressDep, verify: VerifierDep
) -> Actor:
    """The verified caller: a service (mTLS) or a registered signing key; 401 otherwise."""
    if client_certificate(request, state) is None and has_signature(request):
        signing = state.signing
        body = await request.body()
        http = request_from_scope(request.scope, body, signing.trusted_origin)
        identity = await run_in_threadpool(signing.authenticate, http, address)
        request.state.identity = identity
        return Actor("key", identity.key_id, address)
    try:
        service = await run_in_threadpool(verify, request, state)
    except AuthenticationFailed as exc:
        if exc.data.get("reason") != "no-cert":
            raise
        # neither credential: name both ways in rather than only the certificate
        raise AuthenticationFailed(
            "send a client certificate or an RFC 9421 signed request",
            reason="no-credentials",
        ) from None
    return Actor("service", service.service_id, address)


ActorDep = Annotated[Actor, Depends(authenticated_actor)]
