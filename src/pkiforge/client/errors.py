"""Turn an API error (RFC 9457 problem+json) or a network failure into a `pkiforge.errors` value.

This is the one table from HTTP status to exception (api/problems.py maps the other way); the
CLI's exit codes follow from the exception (cli/output.py), for every command that calls a
server, `pkiforge request` included.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Mapping
from typing import Any

from pkiforge.errors import (
    AuthenticationFailed,
    Conflict,
    IntegrityError,
    InvalidInput,
    NotFound,
    PermissionDenied,
    PkiError,
    RateLimited,
    ServerError,
    StoreUnavailable,
    Unreachable,
    UntrustedServer,
)

__all__ = [
    "ServerError",
    "Unreachable",
    "UntrustedServer",
    "error_from_problem",
    "retryable",
    "transport_error",
]

PROBLEM_PREFIX = "urn:pkiforge:problem:"
_BY_STATUS: dict[int, type[PkiError]] = {
    400: InvalidInput,
    401: AuthenticationFailed,
    403: PermissionDenied,
    404: NotFound,
    405: InvalidInput,
    409: Conflict,
    413: InvalidInput,
    415: InvalidInput,
    422: InvalidInput,
    503: StoreUnavailable,
}
_BY_SLUG: dict[str, type[PkiError]] = {"integrity": IntegrityError}
DEFAULT_RETRY_AFTER = 1


def error_from_problem(status: int, headers: Mapping[str, str], body: bytes) -> PkiError:
    """The exception for one error response; its message is the server's `detail`."""
    problem = _problem(body)
    detail = str(problem.get("detail") or problem.get("title") or f"HTTP {status}")
    slug = str(problem.get("type", "")).removeprefix(PROBLEM_PREFIX)
    data: dict[str, Any] = {"status": status, "problem": slug or None}
    request_id = problem.get("request_id")
    if request_id:
        data["request_id"] = str(request_id)
        if status >= 500 and str(request_id) not in detail:  # the log has the cause under it
            detail = f"{detail} (request {request_id})"
    if problem.get("reason"):
        data["reason"] = problem["reason"]
    if status == 429:
        return RateLimited(detail, retry_after=_retry_after(headers), **data)
    if slug in _BY_SLUG:
        return _BY_SLUG[slug](detail, **data)
    # any other 4xx is a request the server refuses as it stands: retrying it cannot help
    kind = _BY_STATUS.get(status, InvalidInput if 400 <= status < 500 else None)
    if kind is InvalidInput:
        return InvalidInput(detail, field=problem.get("field"), **data)
    if kind is not None:
        return kind(detail, **data)
    return ServerError(detail, **data)


def transport_error(url: str, exc: BaseException) -> Unreachable | UntrustedServer:
    """The error for a request that got no answer: `UntrustedServer` when the TLS handshake
    failed on the server's certificate, naming the verification failure; else `Unreachable`."""
    verification = _verification_failure(exc)
    if verification is not None:
        reason = verification.verify_message or verification.reason or "certificate verify failed"
        return UntrustedServer(
            f"the server at {url} is not trusted: its TLS certificate does not verify "
            f"against the trusted CA certificates ({reason})",
            reason=reason,
        )
    reason = str(exc) or type(exc).__name__
    return Unreachable(f"cannot reach the PKI server at {url}: {reason}", reason=reason)


def _verification_failure(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate verification error behind a transport error (httpx chains the ssl
    module's exception as the cause or context of its own), if there is one."""
    seen: BaseException | None = exc
    for _ in range(8):  # a chain is short; never loop on a cycle
        if seen is None:
            return None
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def retryable(exc: BaseException) -> bool:
    """True for failures that may go away by themselves (network, overload, 5xx)."""
    return isinstance(exc, Unreachable | StoreUnavailable | RateLimited | ServerError)


def _problem(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body) if body else {}
    except ValueError:
        return {"detail": body[:200].decode("utf-8", "replace").strip() or None}
    return value if isinstance(value, dict) else {}


def _retry_after(headers: Mapping[str, str]) -> int:
    text = next((v for k, v in headers.items() if k.lower() == "retry-after"), "")
    try:
        return max(0, int(text.strip()))
    except ValueError:  # an HTTP-date is allowed (RFC 9110 §10.2.3) but our server sends seconds
        return DEFAULT_RETRY_AFTER
