"""The only place pkiforge errors become HTTP: RFC 9457 `application/problem+json`.

No response ever carries a stack trace or an internal host: unexpected errors are logged and
answered 500, a store that cannot answer is answered 503 with a stable message and its cause
(`StoreUnavailable.internal`) goes to the log. Each body carries the request's id
(`request_id`, also the `X-Request-ID` header: api/request_id.py), and so does the log line.
`Problem` is the body's schema and `responses()` documents error answers with it (api/openapi.py
gives every route the ones it can answer).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from starlette.convertors import PathConvertor, StringConvertor
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Match
from starlette.types import Scope

from pkiforge.api.request_id import HEADER, request_id
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
    StorageFull,
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
    (StorageFull, 503, "storage-full"),
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


_DESCRIPTIONS = {
    400: "The request is well formed but its content is refused (the problem names the field)",
    401: "No valid client certificate or signed request: send one",
    403: "The caller is known but may not do this (whitelist, policy or profile)",
    404: "No such resource",
    405: "The path does not take this method (`Allow` lists the ones it takes)",
    409: "The resource's state forbids this (already revoked, not issued, a CA not active)",
    413: "The request body is larger than the server accepts",
    422: "The request does not match this schema (`errors` lists every field at fault)",
    429: "Too many requests: try again after `Retry-After` seconds",
    500: "An unexpected error; the detail carries an incident id to find it in the logs",
    503: "The store, the CA key or the disk sync is unavailable, or the disk is below its "
    "reserve; nothing was changed for good",
}


class FieldError(BaseModel):
    """One request field at fault and why."""

    field: str | None
    reason: str


class Problem(BaseModel):
    """RFC 9457 problem details: the body of every error answer (`application/problem+json`)."""

    model_config = ConfigDict(extra="allow")  # RFC 9457 §3.2: problem types may add members

    type: str = Field(description="`urn:pkiforge:problem:<slug>`, stable for programs to match")
    title: str = Field(description="the HTTP status phrase")
    status: int = Field(ge=400, le=599)
    detail: str = Field(description="what went wrong, for people; never a secret or a trace")
    instance: str | None = Field(default=None, description="the request path that failed")
    field: str | None = Field(default=None, description="the request field at fault")
    reason: str | None = Field(default=None, description="a machine-readable reason")
    errors: list[FieldError] | None = Field(default=None, description="every field at fault")
    request_id: str | None = Field(
        default=None, description="this request's id, as in the `X-Request-ID` header and the log"
    )


PROBLEM_REF = "#/components/schemas/Problem"


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries for these error statuses, each a problem+json body."""
    return {
        status: {
            "description": _DESCRIPTIONS[status],
            "content": {PROBLEM: {"schema": {"$ref": PROBLEM_REF}}},
        }
        for status in statuses
    }


def problem(
    status: int,
    slug: str,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
    scope: Scope | None = None,
    **extra: Any,
) -> JSONResponse:
    """Build one problem+json response (`scope` gives its `instance`: the request path)."""
    body: dict[str, Any] = {
        "type": f"urn:pkiforge:problem:{slug}",
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    if scope is not None:
        body["instance"] = scope.get("root_path", "") + scope.get("path", "")
        body["request_id"] = request_id(scope)
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def from_error(exc: PkiError, scope: Scope | None = None) -> JSONResponse:
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
        log.error("request %s: integrity failure: %s", _id(scope), exc)
    if isinstance(exc, StoreUnavailable):
        # the cause may name hosts and ports: the log has it, with the id the client was given
        cause = f": {exc.internal}" if exc.internal else ""
        log.warning("request %s: %s%s", _id(scope), exc, cause)
    return problem(status, slug, str(exc), headers=headers, scope=scope, field=field, reason=reason)


def install(app: FastAPI, routes: Sequence[APIRoute]) -> None:
    """Register the handlers; `routes` are the app's, in the order the router tries them."""

    @app.exception_handler(PkiError)
    async def _pki(request: Request, exc: PkiError) -> JSONResponse:
        return from_error(exc, request.scope)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "field": ".".join(str(p) for p in e.get("loc", ()) if p != "body"),
                "reason": e.get("msg", "invalid"),
            }
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"field": None, "reason": "invalid request"}
        detail = f"{first['field']}: {first['reason']}" if first["field"] else str(first["reason"])
        return problem(422, "validation", detail, scope=request.scope, errors=errors)

    loose = _loose_templates(routes)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404 and (name := _malformed(loose, request.scope)) is not None:
            # the path fits a route but for a parameter its convertor refuses (`{serial:serial}`):
            # a malformed value, not a missing resource
            return from_error(
                InvalidInput(f"{name}: {_EXPECTED.get(name, 'malformed')}", field=name),
                request.scope,
            )
        headers = dict(exc.headers) if exc.headers else {}
        allowed = allowed_methods(routes, request.scope) if exc.status_code == 405 else []
        if allowed:
            # the router stops at the first route whose path matches, so its Allow names only
            # that route's methods; RFC 9110 §15.5.6 wants every method the path takes
            headers["Allow"] = ", ".join(allowed)
        return problem(
            exc.status_code, "http", str(exc.detail), headers=headers or None, scope=request.scope
        )

    @app.exception_handler(ClientDisconnect)
    async def _gone(request: Request, exc: ClientDisconnect) -> JSONResponse:
        # the client closed the connection (or the HTTP layer ended it at the body deadline)
        # before its body arrived: no server error, and nobody left to read the answer
        log.info(
            "request %s: client gone before its body arrived (%s %s)",
            request_id(request.scope),
            request.method,
            request.url.path,
        )
        return problem(
            400, "client-disconnected", "the request body did not arrive", scope=request.scope
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Starlette answers this one outside the app's middleware: the header is set here
        incident = request_id(request.scope)
        log.exception("request %s: unexpected error", incident)
        return problem(
            500,
            "internal",
            f"internal error (incident {incident})",
            scope=request.scope,
            headers={HEADER: incident},
        )


_EXPECTED = {
    "serial": "expected a hex serial number: up to 40 hex digits, maybe after 0x, or octets "
    "separated by colons"
}


def _loose_templates(routes: Sequence[APIRoute]) -> list[tuple[re.Pattern[str], set[str], str]]:
    """Each route with a constrained path parameter, as (its path with any value in that
    parameter, its methods, the parameter's name)."""
    found = []
    for route in routes:
        strict = [
            name
            for name, convertor in route.param_convertors.items()
            if type(convertor) not in (StringConvertor, PathConvertor)
        ]
        if not strict:
            continue
        parts = re.split(r"\{[^}]+\}", route.path_format)
        pattern = "[^/]+".join(re.escape(p) for p in parts)
        found.append((re.compile(f"^{pattern}$"), set(route.methods or ()), strict[0]))
    return found


def _malformed(loose: list[tuple[re.Pattern[str], set[str], str]], scope: Scope) -> str | None:
    """The constrained parameter this request's path would fill with a value its convertor
    refuses, if the path fits such a route (with its method) but for that; else None."""
    path, method = scope.get("path", ""), scope.get("method")
    for pattern, methods, name in loose:
        if method in methods and pattern.match(path):
            return name
    return None


def allowed_methods(routes: Sequence[APIRoute], scope: Scope) -> list[str]:
    """Every method of the path this request reached, sorted.

    The path is the first route template that matches, as the router tries them: a path
    that a later template would also match (`/certificates/request` and `/{serial}`) takes
    only its own methods.
    """
    first = next((r for r in routes if r.matches(scope)[0] != Match.NONE), None)
    if first is None:
        return []
    path = first.path_format
    return sorted({m for r in routes if r.path_format == path for m in r.methods or ()})


def _id(scope: Scope | None) -> str:
    return request_id(scope) if scope is not None else "-"
