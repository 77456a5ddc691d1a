"""Who is calling, for authorization: a verified service, or an enrollment token's bearer."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

from fastapi import Depends, Request

from pkiforge.api.blocking import blocking
from pkiforge.api.deps import AddressDep, ServiceDep, StateDep, identity_verifier
from pkiforge.ca.authorization import Caller, Operation
from pkiforge.ca.enrollment import PREFIX, parse_token


async def service_caller(identity: ServiceDep, state: StateDep, address: AddressDep) -> Caller:
    """The mTLS-verified service with its whitelist policy; 401 without a valid certificate."""
    return state.caller(identity, address)


@blocking
def enrolling_caller(request: Request, state: StateDep, address: AddressDep) -> Caller:
    """`Authorization: Bearer pkf_...` (a one-time enrollment token), else the mTLS service.

    The token is checked here but spent only when the certificate is issued.
    """
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip().startswith(PREFIX):
        # resolved here, not as a parameter, so a token needs no certificate; tests that
        # override `service_identity` are honoured the same way FastAPI would
        return state.caller(identity_verifier(request)(request, state), address)
    secret = parse_token(credentials)
    token = state.api.enrollment.check(secret)
    policy = state.whitelist.policy_for(token.service_id)
    if policy is not None:  # a token never carries admin rights, whatever its service has
        policy = replace(policy, operations=policy.operations - {Operation.ADMIN})
    return Caller(token.service_id, policy, address, secret.token_id, secret.secret_hash)


CallerDep = Annotated[Caller, Depends(service_caller)]
EnrollingCallerDep = Annotated[Caller, Depends(enrolling_caller)]
