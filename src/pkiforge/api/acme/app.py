"""The ACME server (RFC 8555) as an app mounted at /acme: parse, call `AcmeService`, render.

Served on the API's own listener: the TLS handshake asks for a client certificate but does
not require one (server/tls.py), and no route here looks at it; identity is the account key.
Every error is `application/problem+json` with an `urn:ietf:params:acme:error:*` type, and
every answer carries a fresh `Replay-Nonce` (RFC 8555 §6.5), so a client refused with
`badNonce` can retry at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from pkiforge.acme import jws
from pkiforge.acme.models import Status
from pkiforge.acme.service import AcmeService, problem_of
from pkiforge.api.acme.render import (
    Urls,
    account_json,
    authz_json,
    challenge_json,
    order_json,
)
from pkiforge.api.deps import app_state
from pkiforge.api.request_id import request_id
from pkiforge.errors import AcmeError, NotFound, PkiError, StoreUnavailable

log = logging.getLogger("pkiforge.acme")
PROBLEM = "application/problem+json"
JOSE = "application/jose+json"
PEM_CHAIN = "application/pem-certificate-chain"  # RFC 8555 §9.1
RETRY_AFTER_SECONDS = 1  # validation is one fetch with a timeout: poll again soon


@dataclass
class Reply:
    body: dict[str, Any] | bytes | None = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    media_type: str = "application/json"


def problem(exc: PkiError, request: Request | None = None) -> JSONResponse:
    """An error as RFC 8555 §6.7 problem+json; unexpected kinds become serverInternal."""
    p = problem_of(exc)
    if p.status >= 500:
        if isinstance(exc, StoreUnavailable):
            log.warning("acme: %s (%s)", exc, exc.internal)
            p = type(p)("serverInternal", "the store is unavailable", 503)
        else:
            log.error("acme: %s", exc)
    body: dict[str, Any] = p.json()
    if isinstance(exc, AcmeError) and "algorithms" in exc.data:
        body["algorithms"] = exc.data["algorithms"]
    if request is not None:
        body["instance"] = request.url.path
        body["request_id"] = request_id(request.scope)
    return JSONResponse(body, status_code=p.status, media_type=PROBLEM)


def create_acme_app(service: AcmeService) -> FastAPI:
    """The ACME routes; mounted at /acme by `create_app` when `acme.enabled`."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    def settings(request: Request) -> Any:
        return app_state(request).settings.acme

    def urls(request: Request, issuer: str) -> Urls:
        """This issuer's URLs, as the client reached us; NotFound for an unknown or root CA."""
        state = app_state(request)
        if len(state.pki.hierarchy.chain(issuer)) < 2:
            raise NotFound(f"{issuer!r} is not an issuing CA")
        return Urls(f"{request.url.scheme}://{request.url.netloc}", issuer)

    async def answer(
        request: Request, work: Callable[[], Reply], *, nonce: bool = True
    ) -> Response:
        state = app_state(request)
        try:
            reply = await state.run(work)
        except PkiError as exc:
            response: Response = problem(exc, request)
        except Exception:
            log.exception("acme request %s failed", request_id(request.scope))
            response = problem(AcmeError("serverInternal", "internal error", status=500), request)
        else:
            if isinstance(reply.body, bytes):
                response = Response(reply.body, reply.status, reply.headers, reply.media_type)
            else:
                response = JSONResponse(reply.body, reply.status, reply.headers)
        response.headers["Cache-Control"] = "no-store"
        if nonce:
            try:
                response.headers["Replay-Nonce"] = await state.run(service.new_nonce)
            except PkiError as exc:  # no nonce, no further request: say so
                return problem(exc, request)
        return response

    async def signed(
        request: Request, issuer: str, work: Callable[[jws.SignedRequest, Urls], Reply]
    ) -> Response:
        body = await request.body()

        def run() -> Reply:
            where = urls(request, issuer)
            if request.headers.get("content-type", "").split(";")[0].strip() != JOSE:
                raise AcmeError("malformed", f"the request must be {JOSE}", status=415)
            parsed = jws.parse(body, str(request.url), max_bytes=settings(request).max_jws_bytes)
            reply = work(parsed, where)
            reply.headers.setdefault("Link", f'<{where.of("directory")}>;rel="index"')
            return reply

        return await answer(request, run)

    # directory and nonces (§7.1.1, §7.2) ------------------------------------------------

    def directory(request: Request, issuer: str) -> Reply:
        return Reply(urls(request, issuer).directory(eab_required=True, profile=_profile(request)))

    def _profile(request: Request) -> str:
        return str(settings(request).profile)

    @app.get("/directory")
    async def default_directory(request: Request) -> Response:
        issuer = app_state(request).settings.ca.default_issuer
        return await answer(request, partial(directory, request, issuer), nonce=False)

    @app.get("/{issuer}/directory")
    async def issuer_directory(request: Request, issuer: str) -> Response:
        return await answer(request, partial(directory, request, issuer), nonce=False)

    @app.api_route("/{issuer}/new-nonce", methods=["HEAD", "GET"])
    async def new_nonce(request: Request, issuer: str) -> Response:
        def work() -> Reply:
            urls(request, issuer)
            # RFC 8555 §7.2: 200 for HEAD, 204 for GET
            return Reply(b"", 200 if request.method == "HEAD" else 204)

        return await answer(request, work)

    # accounts (§7.3) ---------------------------------------------------------------------

    @app.post("/{issuer}/new-account")
    async def new_account(request: Request, issuer: str) -> Response:
        def work(req: jws.SignedRequest, where: Urls) -> Reply:
            account, created = service.new_account(req)
            location = where.of("account", account.account_id)
            body = account_json(account, where)
            return Reply(body, 201 if created else 200, {"Location": location})

        return await signed(request, issuer, work)

    @app.post("/{issuer}/account/{account_id}")
    async def account(request: Request, issuer: str, account_id: str) -> Response:
        def work(req: jws.SignedRequest, where: Urls) -> Reply:
            acct = service.account_for(req, where.account_id(req.kid))
            if acct.account_id != account_id:
                raise AcmeError("unauthorized", "this is another account's URL", status=403)
            acct = service.update_account(acct, req.json() if req.payload else {})
            return Reply(account_json(acct, where))

        return await signed(request, issuer, work)

    @app.post("/{issuer}/account/{account_id}/orders")
    async def orders(request: Request, issuer: str, account_id: str) -> Response:
        def work(req: jws.SignedRequest, where: Urls) -> Reply:
            acct = service.account_for(req, where.account_id(req.kid))
            if acct.account_id != account_id:
                raise AcmeError("unauthorized", "this is another account's URL", status=403)
            listed = service.orders_of(acct)
            return Reply({"orders": [where.of("order", o.order_id) for o in listed]})

        return await signed(request, issuer, work)

    @app.post("/{issuer}/key-change")
    async def key_change(request: Request, issuer: str) -> Response:
        def work(req: jws.SignedRequest, where: Urls) -> Reply:
            account_id = where.account_id(req.kid)
            acct = service.account_for(req, account_id)
            service.change_key(acct, req, where.of("account", acct.account_id))
            return Reply(account_json(acct, where))

        return await signed(request, issuer, work)

    # orders (§7.4) -----------------------------------------------------------------------

    @app.post("/{issuer}/new-order")
    async def new_order(request: Request, issuer: str) -> Response:
        def work(req: jws.SignedRequest, where: Urls) -> Reply:
            acct = service.account_for(req, where.account_id(req.kid))
            order = service.new_order(acct, req.json(), issuer)
            location = where.of("order", order.order_id)
            return Reply(order_json(order, order.status, where), 201, {"Location": location})

        return await signed(request, issuer, work)

    @app.post("/{issuer}/order/{order_id}")
    async def get_order(request: Request, issuer: str, order_id: str) -> Response:
        def work(req: jws.SignedRequest, where: Urls) -> Reply:
            acct = service.account_for(req, where.account_id(req.kid))
            order, status = service.order(acct, order_id)
            return Reply(order_json(order, status, where))

        return await signed(request, issuer, work)

    @app.post("/{issuer}/order/{order_id}/finalize")
    async def finalize(request: Request, issuer: str, order_id: str) -> Response:
        def work(req: jws.SignedRequest, where: Urls) -> Reply:
            acct = service.account_for(req, where.account_id(req.kid))
            order = service.finalize(acct, order_id, req.json())
            location = where.of("order", order.order_id)
            return Reply(order_json(order, order.status, where), 200, {"Location": location})

        return await signed(request, issuer, work)

    @app.post("/{issuer}/authz/{authz_id}")
    async def authorization(request: Request, issuer: str, authz_id: str) -> Response:
        def work(req: jws.SignedRequest, where: Urls) -> Reply:
            acct = service.account_for(req, where.account_id(req.kid))
            authz, status = service.authorization(acct, authz_id)
            # RFC 8555 §8.2: when to poll again while validation runs
            busy = any(c.status is Status.PROCESSING for c in authz.challenges)
            return Reply(authz_json(authz, status, where), headers=_retry(busy))

        return await signed(request, issuer, work)

    @app.post("/{issuer}/challenge/{challenge_id}")
    async def challenge(request: Request, issuer: str, challenge_id: str) -> Response:
        def work(req: jws.SignedRequest, where: Urls) -> Reply:
            acct = service.account_for(req, where.account_id(req.kid))
            ch, authz = service.respond(acct, challenge_id)
            up = f'<{where.of("authz", authz.authz_id)}>;rel="up"'
            busy = ch.status is Status.PROCESSING
            return Reply(challenge_json(ch, where), 200, {"Link": up, **_retry(busy)})

        return await signed(request, issuer, work)

    @app.post("/{issuer}/cert/{order_id}")
    async def certificate(request: Request, issuer: str, order_id: str) -> Response:
        def work(req: jws.SignedRequest, where: Urls) -> Reply:
            acct = service.account_for(req, where.account_id(req.kid))
            serial = service.certificate(acct, order_id)
            pki = app_state(request).pki
            record = pki.certificates.get(serial)
            if record.certificate is None:
                raise AcmeError("serverInternal", "the certificate was never issued", status=500)
            chain = [record.certificate, *pki.hierarchy.chain(record.issuer)[:-1]]
            pem = b"".join(c.public_bytes(Encoding.PEM) for c in chain)
            return Reply(pem, media_type=PEM_CHAIN)

        return await signed(request, issuer, work)

    @app.post("/{issuer}/revoke-cert")
    async def revoke(request: Request, issuer: str) -> Response:
        def work(req: jws.SignedRequest, where: Urls) -> Reply:
            if req.kid is None:  # signed by the certificate's own key
                service.revoke_by_key(req)
                return Reply(b"", 200)
            acct = service.account_for(req, where.account_id(req.kid))
            service.revoke(acct, req.json())
            return Reply(b"", 200)

        return await signed(request, issuer, work)

    def _retry(busy: bool) -> dict[str, str]:
        return {"Retry-After": str(RETRY_AFTER_SECONDS)} if busy else {}

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        status = 404 if exc.status_code == 404 else 405 if exc.status_code == 405 else 400
        return problem(AcmeError("malformed", str(exc.detail), status=status), request)

    return app
