"""`SignatureAuthMiddleware`: pure ASGI request-signature authentication for any Starlette app.

    verifier = RequestVerifier(keys=keys, nonces=InMemoryNonceStore())
    app.add_middleware(SignatureAuthMiddleware, verifier=verifier)

Every HTTP request and WebSocket handshake outside `exempt_paths` must verify. The body is
buffered (up to `max_body_bytes`), verified, and replayed to the app unchanged. The verified
`VerifiedIdentity` is in `request.state.identity` (`scope["state"]["identity"]`). Failures
are answered here as RFC 9457 `application/problem+json`: 401 with the reason, 429 with
Retry-After for an address that failed too often, 503 when a store cannot answer, 413 for a
body over the limit. Every response gets the security headers in `SECURITY_HEADERS`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

import anyio.to_thread
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pkiforge.auth.canonical import HttpRequest
from pkiforge.auth.metrics import AuthMetrics, Outcome
from pkiforge.auth.ratelimit import FailureTracker
from pkiforge.auth.verify import RequestVerifier, VerifiedIdentity
from pkiforge.errors import AuthenticationFailed, RateLimited, StoreUnavailable

T = TypeVar("T")
__all__ = [
    "SECURITY_HEADERS",
    "MiddlewareOptions",
    "SignatureAuthMiddleware",
    "request_from_scope",
]

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"cache-control", b"no-store"),
    (b"strict-transport-security", b"max-age=63072000; includeSubDomains"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)
_PROBLEM_TYPES = {
    401: ("authentication-failed", "Authentication failed"),
    413: ("body-too-large", "Request body too large"),
    429: ("too-many-failures", "Too many failed authentication attempts"),
    503: ("authentication-unavailable", "Authentication temporarily unavailable"),
}


@dataclass(frozen=True, slots=True)
class MiddlewareOptions:
    """Tuning that most apps leave alone."""

    max_body_bytes: int = 1 << 20
    # Scheme and authority the clients sign (e.g. "https://api.example.com") when a proxy
    # terminates TLS or rewrites Host; None uses the request's own scheme and Host.
    trusted_origin: str | None = None
    state_key: str = "identity"
    # Run the lockout check and the verification in the event loop instead of a worker
    # thread: for key, nonce and lockout stores that answer in well under a millisecond
    # (memory, Redis or SQLite on this machine). A thread hop costs more than such a check;
    # leave False when a store may be slow to answer (a remote database).
    inline: bool = False


class _Refused(Exception):
    """Stop handling the request and answer with a problem document."""

    def __init__(self, status: int, detail: str, headers: Iterable[tuple[bytes, bytes]] = ()):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = list(headers)


class _Disconnected(Exception):
    """The client went away before its body arrived; there is no one to answer."""


class SignatureAuthMiddleware:
    """ASGI middleware that lets only requests with a verified signature through."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        verifier: RequestVerifier,
        exempt_paths: Iterable[str] = (),
        failures: FailureTracker | None = None,
        metrics: AuthMetrics | None = None,
        options: MiddlewareOptions | None = None,
    ) -> None:
        self.app = app
        self.verifier = verifier
        self.exempt_paths = frozenset(exempt_paths)
        self.failures = failures
        self.metrics = metrics
        self.options = options or MiddlewareOptions()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        send = _with_security_headers(send)
        if scope["path"] in self.exempt_paths:
            await self.app(scope, receive, send)
            return
        try:
            identity, receive = await self._authenticate(scope, receive)
        except _Refused as refusal:
            await _refuse(scope, receive, send, refusal)
            return
        except _Disconnected:
            return
        scope["state"] = {**scope.get("state", {}), self.options.state_key: identity}
        await self.app(scope, receive, send)

    async def _authenticate(
        self, scope: Scope, receive: Receive
    ) -> tuple[VerifiedIdentity, Receive]:
        client = _client_address(scope)
        try:
            body = await _read_body(scope, receive, self.options.max_body_bytes)
            request = request_from_scope(scope, body, self.options.trusted_origin)
            identity = await self._verify(client, request)
        except RateLimited as exc:
            self._count(Outcome.BLOCKED)
            raise _Refused(
                429, exc.message, [(b"retry-after", str(exc.retry_after).encode())]
            ) from exc
        except AuthenticationFailed as exc:
            self._count(Outcome.FAILURE)
            await self._record_failure(client)
            raise _Refused(401, exc.message) from exc
        except StoreUnavailable as exc:
            self._count(Outcome.UNAVAILABLE)
            raise _Refused(
                503, "a backing store cannot answer; retry shortly", [(b"retry-after", b"1")]
            ) from exc
        self._count(Outcome.SUCCESS, identity.scheme)
        return identity, _replay(body, receive)

    async def _verify(self, client: str, request: HttpRequest) -> VerifiedIdentity:
        started = time.perf_counter()
        try:
            return await self._blocking(partial(self._check_and_verify, client, request))
        finally:
            if self.metrics is not None:
                self.metrics.observe(time.perf_counter() - started)

    def _check_and_verify(self, client: str, request: HttpRequest) -> VerifiedIdentity:
        # one trip to a thread for both: each trip costs about as much as the check itself
        if self.failures is not None:
            self.failures.check(client)
        return self.verifier.verify(request)

    async def _blocking(self, call: Callable[[], T]) -> T:
        if self.options.inline:
            return call()
        return await anyio.to_thread.run_sync(call)

    async def _record_failure(self, client: str) -> None:
        if self.failures is None:
            return
        try:
            await self._blocking(partial(self.failures.record_failure, client))
        except StoreUnavailable:
            self._count(Outcome.UNAVAILABLE)  # the request is refused anyway

    def _count(self, outcome: Outcome, scheme: str = "") -> None:
        if self.metrics is not None:
            self.metrics.attempt(outcome, scheme)


def _client_address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


async def _read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    if scope["type"] == "websocket":
        return b""
    declared = _header(scope, b"content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise _Refused(413, f"request body exceeds {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _Refused(413, f"request body exceeds {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def request_from_scope(scope: Scope, body: bytes, trusted_origin: str | None) -> HttpRequest:
    """The request as the client signed it: method, target URI (origin + raw path), headers."""
    headers = [
        (bytes(k).decode("latin-1"), bytes(v).decode("latin-1")) for k, v in scope["headers"]
    ]
    scheme = {"ws": "http", "wss": "https"}.get(scope.get("scheme", "http"), scope.get("scheme"))
    if trusted_origin:
        origin = trusted_origin.rstrip("/")
    else:
        host = _header(scope, b"host")
        if host is None and scope.get("server"):
            server_host, port = scope["server"]
            host = f"{server_host}:{port}" if port else str(server_host)
        origin = f"{scheme}://{host or 'unknown'}"
    raw_path = scope.get("raw_path") or scope["path"].encode("utf-8")
    path = bytes(raw_path).decode("latin-1").split("?", 1)[0]
    query = bytes(scope.get("query_string", b"")).decode("latin-1")
    uri = origin + path + (f"?{query}" if query else "")
    method = scope.get("method", "GET")
    return HttpRequest(method=method, target_uri=uri, headers=headers, body=body)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive callable that hands the buffered body on once, then defers to the server."""
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _with_security_headers(send: Send) -> Send:
    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            present = {bytes(name).lower() for name, _ in headers}
            headers.extend(h for h in SECURITY_HEADERS if h[0] not in present)
            message = {**message, "headers": headers}
        await send(message)

    return send_with_headers


async def _refuse(scope: Scope, receive: Receive, send: Send, refusal: _Refused) -> None:
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.close", "code": 1008, "reason": refusal.detail[:120]})
        return
    slug, title = _PROBLEM_TYPES[refusal.status]
    problem = {
        "type": f"urn:pkiforge:problem:{slug}",
        "title": title,
        "status": refusal.status,
        "detail": refusal.detail,
    }
    body = json.dumps(problem).encode("utf-8")
    headers = [
        (b"content-type", b"application/problem+json"),
        (b"content-length", str(len(body)).encode()),
        *refusal.headers,
    ]
    await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
