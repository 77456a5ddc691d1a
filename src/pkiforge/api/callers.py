"""Who is calling, for authorization: a verified service, or an enrollment token's bearer."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

from fastapi import Depends, Request

from pkiforge.api.deps import (
    AddressDep,
    IdentityVerifier,
    ServiceDep,
    StateDep,
    VerifierDep,
    app_state,
    client_host,
)
from pkiforge.api.state import AppState
from pkiforge.ca.authorization import Caller, Operation
from pkiforge.ca.enrollment import parse_token


async def service_caller(identity: ServiceDep, state: StateDep, address: AddressDep) -> Caller:
    """The mTLS-verified service with its whitelist policy; 401 without a valid certificate."""
    return state.caller(identity, address)


def _enrolling_caller(request: Request, state: AppState, verify: IdentityVerifier) -> Caller:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    # every Bearer credential is taken for a token: a malformed one is refused as such, not
    # as a missing client certificate
    if scheme.lower() != "bearer":
        # resolved here, not as a parameter, so a token needs no certificate
        identity = verify(request, state)
        return state.caller(identity, client_host(request, state))
    secret = parse_token(credentials)
    token = state.api.enrollment.check(secret)
    policy = state.whitelist.policy_for(token.service_id)
    if policy is not None:  # a token never carries admin rights, whatever its service has
        policy = replace(policy, operations=policy.operations - {Operation.ADMIN})
    return Caller(
        token.service_id,
        policy,
        client_host(request, state),
        secret.token_id,
        secret.secret_hash,
        token.profile,
    )


def enrolling_caller(request: Request, verify: VerifierDep) -> Caller:
    """`Authorization: Bearer pkf_...` (a one-time enrollment token), else the mTLS service.

    The token is checked here but spent only when the certificate is issued. State and
    address come from the request rather than as sub-dependencies: this is the issuance
    route's, and every dependency FastAPI solves costs more than the lookup.
    """
    return _enrolling_caller(request, app_state(request), verify)


CallerDep = Annotated[Caller, Depends(service_caller)]
EnrollingCallerDep = Annotated[Caller, Depends(enrolling_caller)]
