"""The only place pkiforge errors become HTTP: RFC 9457 `application/problem+json`.

No response ever carries a stack trace; unexpected errors are logged and answered 500 with a
correlation id.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from pkiforge.errors import (
    AuthenticationFailed,
    BadPassphrase,
    Conflict,
    IntegrityError,
    InvalidInput,
    NotFound,
    PermissionDenied,
    PkiError,
    RateLimited,
    StoreUnavailable,
)

log = logging.getLogger("pkiforge.api")
PROBLEM = "application/problem+json"

STATUS: tuple[tuple[type[PkiError], int, str], ...] = (
    (InvalidInput, 400, "invalid-input"),
    (NotFound, 404, "not-found"),
    (Conflict, 409, "conflict"),
    (AuthenticationFailed, 401, "unauthenticated"),
    (PermissionDenied, 403, "forbidden"),
    (RateLimited, 429, "rate-limited"),
    (StoreUnavailable, 503, "unavailable"),
    (BadPassphrase, 503, "ca-key-unavailable"),
    (IntegrityError, 500, "integrity"),
)
_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def problem(
    status: int, slug: str, detail: str, *, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    """Build one problem+json response."""
    body = {
        "type": f"urn:pkiforge:problem:{slug}",
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def from_error(exc: PkiError) -> JSONResponse:
    """Map our exception tree to a response; the message is safe by construction."""
    status, slug = next(
        ((st, sl) for kind, st, sl in STATUS if isinstance(exc, kind)), (500, "error")
    )
    headers = {}
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(max(1, int(exc.retry_after)))
    if isinstance(exc, AuthenticationFailed):
        headers["WWW-Authenticate"] = 'Mutual-TLS realm="pkiforge"'
    field = exc.data.get("field")
    reason = exc.data.get("reason")
    if status >= 500 and not isinstance(exc, StoreUnavailable | BadPassphrase):
        log.error("integrity failure: %s", exc)
    return problem(status, slug, str(exc), headers=headers, field=field, reason=reason)


def install(app: FastAPI) -> None:
    """Register the handlers."""

    @app.exception_handler(PkiError)
    async def _pki(_: Request, exc: PkiError) -> JSONResponse:
        return from_error(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "field": ".".join(str(p) for p in e.get("loc", ()) if p != "body"),
                "reason": e.get("msg", "invalid"),
            }
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"field": None, "reason": "invalid request"}
        detail = f"{first['field']}: {first['reason']}" if first["field"] else str(first["reason"])
        return problem(422, "validation", detail, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem(
            exc.status_code,
            "http",
            str(exc.detail),
            headers=dict(exc.headers) if exc.headers else None,
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        incident = uuid.uuid4().hex[:12]
        log.exception("unexpected error %s", incident)
        return problem(500, "internal", f"internal error (incident {incident})")
