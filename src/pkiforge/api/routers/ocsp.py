"""OCSP over HTTP (RFC 6960 Appendix A): POST a DER request, or GET it base64 in the path."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated
from urllib.parse import unquote

from fastapi import APIRouter, Path, Request, Response
from starlette.concurrency import run_in_threadpool

from pkiforge.api.deps import StateDep
from pkiforge.api.problems import responses
from pkiforge.ca.ocsp import MAX_REQUEST_BYTES, OCSPResponder
from pkiforge.errors import InvalidInput

router = APIRouter(prefix="/api/v1", tags=["ocsp"], responses=responses(400))

OCSP_REQUEST = "application/ocsp-request"
OCSP_RESPONSE = "application/ocsp-response"


def _answer(state: StateDep, der: bytes) -> Response:
    body = OCSPResponder(state.pki.ctx).respond(der)
    return Response(
        body,
        media_type=OCSP_RESPONSE,
        headers={"Cache-Control": "max-age=300, public, no-transform"},
    )


@router.post(
    "/ocsp",
    responses={200: {"content": {OCSP_RESPONSE: {}}}},
    openapi_extra={"requestBody": {"content": {OCSP_REQUEST: {}}, "required": True}},
)
async def ocsp_post(request: Request, state: StateDep) -> Response:
    """A DER OCSPRequest in the body."""
    if request.headers.get("content-type", "").split(";")[0].strip() != OCSP_REQUEST:
        raise InvalidInput(f"content type must be {OCSP_REQUEST}", field="content-type")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_REQUEST_BYTES:
            raise InvalidInput("OCSP request too large", field="body")
    return await run_in_threadpool(_answer, state, body)


@router.get("/ocsp/{encoded:path}", responses={200: {"content": {OCSP_RESPONSE: {}}}})
def ocsp_get(encoded: Annotated[str, Path(max_length=4096)], state: StateDep) -> Response:
    """The base64 (URL-encoded) DER OCSPRequest in the path.

    A path that is not base64 is answered like any unreadable request: an OCSP
    malformedRequest response (RFC 6960 §2.3), which OCSP clients understand.
    """
    try:
        der = base64.b64decode(unquote(encoded), validate=True)
    except (binascii.Error, ValueError):
        der = b""  # not an OCSPRequest: the responder answers malformedRequest
    return _answer(state, der)
