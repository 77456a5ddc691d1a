"""`pkiforge publish serve`: what relying parties fetch, over plain HTTP, from the database.

CRLs (full and delta), CA certificates and OCSP, at the same paths as the HTTPS API so that
only the scheme and host of a URL differ. No TLS and no client certificate: a relying party
checking revocation must not need either (RFC 5280 §4.2.1.13 and RFC 6960 Appendix A use
HTTP). No CA key is used (`wiring.build_pki(..., ca_keys=False)`): the CRLs are the ones the
servers and the scheduler signed, and OCSP answers are cached ones or signed by the CA's
delegated responder, whose key is in the database.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import anyio
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from fastapi import FastAPI, Header, Path, Request, Response
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from pkiforge.api import problems
from pkiforge.api.routers.ca import DER_CERT, DER_CRL, PEM_CERT, CAName, Format
from pkiforge.api.routers.ocsp import OCSP_RESPONSE, decode_get, ocsp_response, read_request
from pkiforge.errors import Conflict
from pkiforge.pki import Pki


def create_publish_app(pki: Pki) -> FastAPI:
    """The publishing app over `pki` (built without CA keys)."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        limiter = anyio.to_thread.current_default_thread_limiter()
        limiter.total_tokens = pki.settings.publish.threads
        try:
            yield
        finally:
            pki.close()

    app = FastAPI(
        title="pkiforge publishing",
        description="CRLs, CA certificates and OCSP over plain HTTP.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/v1/crl/{issuer}", responses={200: {"content": {DER_CRL: {}, PEM_CERT: {}}}})
    def crl(issuer: CAName, format: Format = "der") -> Response:
        """The issuer's newest CRL (DER, or PEM with ?format=pem)."""
        served = pki.revocation.current_crl(issuer)
        record = served.record
        max_age = 0 if served.missing_revocations else _max_age(pki, record.next_update)
        return _crl(record.der, format, max_age)

    @app.get(
        "/api/v1/crl/{issuer}/delta", responses={200: {"content": {DER_CRL: {}, PEM_CERT: {}}}}
    )
    def delta_crl(issuer: CAName, format: Format = "der") -> Response:
        """The issuer's delta CRL; 409 while `crl.delta` is off."""
        record = pki.revocation.current_delta(issuer)
        return _crl(record.der, format, _max_age(pki, record.next_update))

    @app.get("/api/v1/ca/{name}", responses={200: {"content": {PEM_CERT: {}, DER_CERT: {}}}})
    def ca_certificate(name: CAName, format: Format = "pem") -> Response:
        """A CA certificate (PEM, or DER with ?format=der: what caIssuers URLs name)."""
        ca = pki.ctx.get_ca(name)
        if ca.certificate is None:
            raise Conflict(f"CA {name!r} has no certificate yet ({ca.status.value})")
        encoding = Encoding.DER if format == "der" else Encoding.PEM
        return Response(
            ca.certificate.public_bytes(encoding),
            media_type=DER_CERT if format == "der" else PEM_CERT,
            headers={"Cache-Control": "max-age=3600"},
        )

    @app.post("/api/v1/ocsp", responses={200: {"content": {OCSP_RESPONSE: {}}}})
    async def ocsp_post(request: Request) -> Response:
        """A DER OCSPRequest in the body."""
        body = await read_request(request)
        return await run_in_threadpool(ocsp_response, pki, body)

    @app.get("/api/v1/ocsp/{encoded:path}", responses={200: {"content": {OCSP_RESPONSE: {}}}})
    def ocsp_get(
        encoded: Annotated[str, Path(max_length=4096)],
        if_none_match: Annotated[str | None, Header(max_length=1024)] = None,
    ) -> Response:
        """The base64 (URL-encoded) DER OCSPRequest in the path (RFC 5019 caching headers)."""
        return ocsp_response(pki, decode_get(encoded), if_none_match)

    problems.install(app, [r for r in app.routes if isinstance(r, APIRoute)])
    return app


def _crl(der: bytes, format: str, max_age: int) -> Response:
    headers = {"Cache-Control": f"max-age={max_age}"}
    if format == "pem":
        pem = x509.load_der_x509_crl(der).public_bytes(Encoding.PEM)
        return Response(pem, media_type=PEM_CERT, headers=headers)
    return Response(der, media_type=DER_CRL, headers=headers)


def _max_age(pki: Pki, next_update: dt.datetime) -> int:
    return max(0, int((next_update - pki.ctx.clock.now()).total_seconds() / 2))
