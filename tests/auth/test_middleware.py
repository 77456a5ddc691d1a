"""SignatureAuthMiddleware end to end: httpx.ASGITransport + SigningAuth on tiny apps."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest
from fastapi import FastAPI, Request
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from pkiforge.auth.canonical import HttpRequest
from pkiforge.auth.keys import InMemoryKeyResolver
from pkiforge.auth.metrics import AuthMetrics
from pkiforge.auth.middleware import MiddlewareOptions, SignatureAuthMiddleware
from pkiforge.auth.nonces import InMemoryNonceStore
from pkiforge.auth.ratelimit import FailurePolicy, InMemoryFailureTracker
from pkiforge.auth.verify import RequestVerifier
from pkiforge.client.auth import SigningAuth
from pkiforge.clock import FixedClock
from pkiforge.errors import StoreUnavailable

from .support import private_key

SECURITY = {
    "x-content-type-options": "nosniff",
    "cache-control": "no-store",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


async def whoami(request: Request) -> Response:
    body = await request.body()
    identity = request.state.identity
    return JSONResponse(
        {"key_id": identity.key_id, "client": identity.client_name, "body": body.decode()}
    )


async def health(request: Request) -> Response:
    return PlainTextResponse("ok")


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture(params=[False, True], ids=["in-thread", "inline"])
def app(
    verifier: RequestVerifier,
    registry: CollectorRegistry,
    clock: FixedClock,
    request: pytest.FixtureRequest,
) -> Starlette:
    app = Starlette(
        routes=[Route("/whoami", whoami, methods=["GET", "POST"]), Route("/health", health)]
    )
    app.add_middleware(
        SignatureAuthMiddleware,
        verifier=verifier,
        exempt_paths={"/health"},
        failures=InMemoryFailureTracker(FailurePolicy(3, 60, 120), clock=clock),
        metrics=AuthMetrics(registry),
        options=MiddlewareOptions(max_body_bytes=1024, inline=request.param),
    )
    return app


def _auth(
    clock: FixedClock, key: str = "client-ed25519", key_id: str = "key-ed25519"
) -> SigningAuth:
    return SigningAuth(key_id=key_id, private_key=private_key(key), clock=clock)


def _client(
    app: object, auth: httpx.Auth | None = None, host: str = "https://testserver"
) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=host, auth=auth)  # type: ignore[arg-type]


def _assert_security_headers(response: httpx.Response) -> None:
    for name, value in SECURITY.items():
        assert response.headers[name] == value
    assert response.headers["strict-transport-security"].startswith("max-age=")


@pytest.mark.parametrize(
    ("key", "key_id"),
    [
        ("client-ed25519", "key-ed25519"),
        ("client-rsa2048", "key-rsa-pss"),
        ("client-p384", "key-p384"),
    ],
)
async def test_signed_requests_pass_and_see_their_identity(
    app: Starlette, clock: FixedClock, key: str, key_id: str
) -> None:
    async with _client(app, _auth(clock, key, key_id)) as client:
        got = await client.get("/whoami", params={"q": "a b"})
        posted = await client.post("/whoami", json={"name": "db-1"})
    assert got.status_code == 200, got.text
    assert got.json()["key_id"] == key_id
    assert posted.status_code == 200, posted.text
    assert posted.json() == {"key_id": key_id, "client": "client-a", "body": '{"name":"db-1"}'}
    _assert_security_headers(posted)


async def test_unsigned_request_gets_401_problem_json(app: Starlette) -> None:
    async with _client(app) as client:
        response = await client.get("/whoami")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == {
        "type": "urn:pkiforge:problem:authentication-failed",
        "title": "Authentication failed",
        "status": 401,
        "detail": "missing Signature-Input",
    }
    _assert_security_headers(response)


async def test_exempt_path_needs_no_signature_but_gets_security_headers(app: Starlette) -> None:
    async with _client(app) as client:
        response = await client.get("/health")
    assert response.status_code == 200
    _assert_security_headers(response)


async def test_replay_through_the_middleware_is_refused(app: Starlette, clock: FixedClock) -> None:
    captured: list[httpx.Request] = []
    async with _client(app, _auth(clock)) as client:
        client.event_hooks["request"] = [lambda request: _capture(captured, request)]
        assert (await client.post("/whoami", content=b"x")).status_code == 200
    async with _client(app) as plain:
        replay = await plain.send(captured[0])
    assert replay.status_code == 401
    assert replay.json()["detail"] == "nonce reused"


async def _capture(captured: list[httpx.Request], request: httpx.Request) -> None:
    captured.append(request)


async def test_repeated_failures_get_429_with_retry_after(
    app: Starlette, clock: FixedClock
) -> None:
    async with _client(app) as client:
        statuses = [(await client.get("/whoami")).status_code for _ in range(3)]
        blocked = await client.get("/whoami")
    async with _client(app, _auth(clock)) as signed:
        still_blocked = await signed.get("/whoami")
    assert statuses == [401, 401, 401]
    assert blocked.status_code == 429
    assert blocked.headers["retry-after"] == "120"
    assert blocked.headers["content-type"] == "application/problem+json"
    assert still_blocked.status_code == 429


async def test_oversized_body_gets_413(app: Starlette, clock: FixedClock) -> None:
    async with _client(app, _auth(clock)) as client:
        response = await client.post("/whoami", content=b"x" * 2048)
    assert response.status_code == 413
    assert response.json()["status"] == 413


async def test_store_outage_gets_503(keys: InMemoryKeyResolver, clock: FixedClock) -> None:
    class Broken:
        def check_and_store(
            self, key_id: str, nonce: str, ttl_seconds: int, *, created: dt.datetime
        ) -> bool:
            raise StoreUnavailable("down")

    app = Starlette(routes=[Route("/whoami", whoami)])
    app.add_middleware(
        SignatureAuthMiddleware, verifier=RequestVerifier(keys=keys, nonces=Broken(), clock=clock)
    )
    async with _client(app, _auth(clock)) as client:
        response = await client.get("/whoami")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"


async def test_metrics_count_outcomes_in_the_given_registry(
    app: Starlette, clock: FixedClock, registry: CollectorRegistry
) -> None:
    async with _client(app, _auth(clock)) as client:
        await client.get("/whoami")
    async with _client(app) as client:
        await client.get("/whoami")

    def sample(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert sample("pkiforge_auth_attempts_total", outcome="success", scheme="rfc9421") == 1
    assert sample("pkiforge_auth_attempts_total", outcome="failure", scheme="") == 1
    assert sample("pkiforge_auth_verification_seconds_count") == 2


async def test_fastapi_in_three_lines(keys: InMemoryKeyResolver, clock: FixedClock) -> None:
    api = FastAPI()

    @api.post("/items")
    async def create(request: Request) -> dict[str, object]:
        return {"by": request.state.identity.key_id, "item": await request.json()}

    verifier = RequestVerifier(keys=keys, nonces=InMemoryNonceStore(clock=clock), clock=clock)
    api.add_middleware(SignatureAuthMiddleware, verifier=verifier)

    async with _client(api, _auth(clock, "client-p256", "key-p256")) as client:
        response = await client.post("/items", json={"n": 1})
    async with _client(api) as client:
        unsigned = await client.post("/items")
    assert response.status_code == 200, response.text
    assert response.json() == {"by": "key-p256", "item": {"n": 1}}
    assert unsigned.status_code == 401


async def test_trusted_origin_behind_a_tls_terminating_proxy(
    keys: InMemoryKeyResolver, clock: FixedClock
) -> None:
    """The client signs https://api.example.com/...; the app sees http://10.0.0.5:8000/..."""
    verifier = RequestVerifier(keys=keys, nonces=InMemoryNonceStore(clock=clock), clock=clock)
    app = Starlette(routes=[Route("/whoami", whoami)])
    options = MiddlewareOptions(trusted_origin="https://api.example.com")
    app.add_middleware(SignatureAuthMiddleware, verifier=verifier, options=options)
    auth = _auth(clock)
    signed = httpx.Request("GET", "https://api.example.com/whoami?x=1")
    next(auth.auth_flow(signed))
    forwarded = httpx.Request("GET", "http://10.0.0.5:8000/whoami?x=1", headers=signed.headers)
    async with _client(app, host="http://10.0.0.5:8000") as client:
        assert (await client.send(forwarded)).status_code == 200


async def test_websocket_handshake_without_signature_is_closed(verifier: RequestVerifier) -> None:
    sent: list[dict[str, object]] = []

    async def app(scope: object, receive: object, send: object) -> None:
        raise AssertionError("must not be reached")

    async def receive() -> dict[str, object]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    middleware = SignatureAuthMiddleware(app, verifier=verifier)  # type: ignore[arg-type]
    scope = {
        "type": "websocket",
        "path": "/ws",
        "headers": [(b"host", b"h")],
        "scheme": "wss",
        "query_string": b"",
    }
    await middleware(scope, receive, send)  # type: ignore[arg-type]
    assert sent == [{"type": "websocket.close", "code": 1008, "reason": "missing Signature-Input"}]


def test_sync_client_signs_too(verifier: RequestVerifier, clock: FixedClock) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        parts = HttpRequest(
            request.method, str(request.url), request.headers.multi_items(), request.read()
        )
        identity = verifier.verify(parts)
        return httpx.Response(200, json={"key_id": identity.key_id})

    with httpx.Client(transport=httpx.MockTransport(handler), auth=_auth(clock)) as client:
        assert client.post("https://api.example.com/x", json={"a": 1}).json() == {
            "key_id": "key-ed25519"
        }
        assert client.get("https://api.example.com/x?y=2").status_code == 200
