"""OCSP over HTTP (RFC 6960 Appendix A): POST a DER request, or GET it base64 in the path."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
from email.utils import format_datetime
from typing import Annotated
from urllib.parse import unquote

from fastapi import APIRouter, Header, Path, Request, Response
from starlette.concurrency import run_in_threadpool

from pkiforge.api.deps import StateDep
from pkiforge.api.problems import responses
from pkiforge.ca.ocsp import MAX_REQUEST_BYTES, OCSPAnswer
from pkiforge.errors import InvalidInput
from pkiforge.pki import Pki

router = APIRouter(prefix="/api/v1", tags=["ocsp"], responses=responses(400))

OCSP_REQUEST = "application/ocsp-request"
OCSP_RESPONSE = "application/ocsp-response"


def _answer(state: StateDep, der: bytes, if_none_match: str | None = None) -> Response:
    return ocsp_response(state.pki, der, if_none_match)


def ocsp_response(pki: Pki, der: bytes, if_none_match: str | None = None) -> Response:
    """The HTTP answer to a DER request (shared with `publish serve`, api/publish.py)."""
    answer = pki.ocsp.answer(der)
    headers = http_caching(answer, pki.ctx.clock.now(), pki.settings.ocsp.max_age)
    if if_none_match is not None and headers.get("ETag") in _tags(if_none_match):
        return Response(status_code=304, headers=headers)
    return Response(answer.der, media_type=OCSP_RESPONSE, headers=headers)


def http_caching(answer: OCSPAnswer, now: dt.datetime, bound: dt.timedelta) -> dict[str, str]:
    """RFC 5019 §6.2 headers: an answer is cacheable until its nextUpdate (at most `bound`
    from now); error statuses and `unknown` are not cached."""
    if answer.this_update is None or answer.next_update is None:
        return {"Cache-Control": "no-store"}
    seconds = int(min(answer.next_update - now, bound).total_seconds())
    return {
        "Cache-Control": f"max-age={max(seconds, 0)}, public, no-transform, must-revalidate",
        "Expires": format_datetime(answer.next_update, usegmt=True),
        "Last-Modified": format_datetime(answer.this_update, usegmt=True),
        "ETag": f'"{hashlib.sha256(answer.der).hexdigest()}"',
    }


def _tags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in header.split(",")}


@router.post(
    "/ocsp",
    responses={200: {"content": {OCSP_RESPONSE: {}}}},
    openapi_extra={"requestBody": {"content": {OCSP_REQUEST: {}}, "required": True}},
)
async def ocsp_post(request: Request, state: StateDep) -> Response:
    """A DER OCSPRequest in the body."""
    body = await read_request(request)
    return await run_in_threadpool(_answer, state, body)


@router.get("/ocsp/{encoded:path}", responses={200: {"content": {OCSP_RESPONSE: {}}}, 304: {}})
def ocsp_get(
    encoded: Annotated[str, Path(max_length=4096)],
    state: StateDep,
    if_none_match: Annotated[str | None, Header(max_length=1024)] = None,
) -> Response:
    """The base64 (URL-encoded) DER OCSPRequest in the path.

    A path that is not base64 is answered like any unreadable request: an OCSP
    malformedRequest response (RFC 6960 §2.3), which OCSP clients understand.
    """
    return _answer(state, decode_get(encoded), if_none_match)


def decode_get(encoded: str) -> bytes:
    """The DER request of a GET path; empty (answered malformedRequest) if not base64."""
    try:
        return base64.b64decode(unquote(encoded), validate=True)
    except (binascii.Error, ValueError):
        return b""  # not an OCSPRequest: the responder answers malformedRequest


async def read_request(request: Request) -> bytes:
    """A POSTed DER request, at most MAX_REQUEST_BYTES.

    Raises:
        InvalidInput: another content type, or too large.
    """
    if request.headers.get("content-type", "").split(";")[0].strip() != OCSP_REQUEST:
        raise InvalidInput(f"content type must be {OCSP_REQUEST}", field="content-type")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_REQUEST_BYTES:
            raise InvalidInput("OCSP request too large", field="body")
    return body
