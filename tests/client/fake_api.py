"""A fake pkiforge API that follows the contract of issue 4, for `httpx.MockTransport`."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from tests.client.fakeca import FakeCA, fingerprint, pem

TOKEN = "pkf_0123456789abcdef." + "s" * 40
PROBLEM = "application/problem+json"
Route = Callable[..., httpx.Response]


def problem(status: int, slug: str, detail: str, **extra: Any) -> httpx.Response:
    headers = {"Retry-After": "7"} if status == 429 else {}
    body = {"type": f"urn:pkiforge:problem:{slug}", "status": status, "detail": detail}
    return httpx.Response(
        status, json={**body, **extra}, headers={"content-type": PROBLEM, **headers}
    )


@dataclass
class FakeApi:
    """In-memory certificates and services; `fail` queues error responses for the next calls."""

    ca: FakeCA = field(default_factory=FakeCA)
    certs: dict[str, dict[str, Any]] = field(default_factory=dict)
    services: dict[str, dict[str, Any]] = field(default_factory=dict)
    tokens: set[str] = field(default_factory=lambda: {TOKEN})
    fail: list[httpx.Response | Exception] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)
    bundle: str | None = None  # what GET /ca/bundle serves; None: the fake CA's chain
    renew_before_days: int = 30  # what GET /renewal-policy serves

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.fail:
            queued = self.fail.pop(0)
            if isinstance(queued, Exception):
                raise queued
            return queued
        path = request.url.path.removeprefix("/api/v1")
        for method, pattern, route in self._routes():
            match = re.fullmatch(pattern, path)
            if method == request.method and match:
                return route(request, *match.groups())
        return problem(404, "http", "Not Found")

    def _renewal_policy(self, _r: httpx.Request) -> httpx.Response:
        days = self.renew_before_days
        return httpx.Response(
            200, json={"renew_before_expiry_days": days, "notification_days": [30, 7, 1]}
        )

    def _routes(self) -> list[tuple[str, str, Route]]:
        return [
            ("GET", r"/renewal-policy", self._renewal_policy),
            ("POST", r"/certificates/request", self._request),
            ("GET", r"/certificates", self._list),
            ("GET", r"/certificates/([0-9a-f]+)", lambda _r, s: self._out(s)),
            ("GET", r"/certificates/([0-9a-f]+)/download", self._download),
            ("POST", r"/certificates/([0-9a-f]+)/renew", self._renew),
            ("POST", r"/certificates/([0-9a-f]+)/revoke", self._revoke),
            ("POST", r"/services/register", self._register),
            ("GET", r"/services", lambda _r: httpx.Response(200, json=[*self.services.values()])),
            ("GET", r"/services/([^/]+)", lambda _r, i: self._service(i)),
            ("PUT", r"/services/([^/]+)", self._update),
            ("GET", r"/discovery/services", self._discover),
            ("GET", r"/discovery/services/([^/]+)", lambda _r, i: self._service(i)),
            ("GET", r"/discovery/services/([^/]+)/cert", self._peer_cert),
            ("GET", r"/ca", self._cas),
            ("GET", r"/ca/root", lambda _r: httpx.Response(200, text=pem(self.ca.root))),
            ("GET", r"/ca/bundle", lambda _r: self._pem(self.bundle or self.ca.chain_pem())),
            ("GET", r"/ca/([a-z0-9-]+)/chain", lambda _r, _n: self._pem(self.ca.chain_pem())),
            ("GET", r"/crl/check/([0-9a-f]+)", self._check),
            ("GET", r"/crl/([a-z0-9-]+)", self._crl),
            ("GET", r"/whoami", self._whoami),
            ("GET", r"/healthz", lambda _r: httpx.Response(200, json={"status": "ok"})),
        ]

    # --- certificates ---------------------------------------------------------------------

    def _request(self, request: httpx.Request) -> httpx.Response:
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer "):
            return problem(401, "unauthenticated", "a client certificate or token is required")
        token = auth.removeprefix("Bearer ")
        if token not in self.tokens:
            return problem(401, "unauthenticated", "enrollment token already used", reason="used")
        body = json.loads(request.content)
        if not body.get("csr"):
            return problem(422, "validation", "csr: field required", field="csr")
        self.tokens.discard(token)
        return self._issue(body, renewed_from=None)

    def _issue(self, body: dict[str, Any], renewed_from: str | None) -> httpx.Response:
        csr = x509.load_pem_x509_csr(body["csr"].encode())
        cert = self.ca.issue(csr)
        serial = format(cert.serial_number, "x")
        cn = csr.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        self.certs[serial] = {
            "serial": serial,
            "certificate_id": f"c-{len(self.certs) + 1}",
            "service_id": body.get("service_id") or (str(cn[0].value) if cn else None),
            "common_name": str(cn[0].value) if cn else None,
            "names": [f"DNS:{n}" for n in body.get("san_dns", [])],
            "issuer": "services",
            "profile": body.get("profile", "service"),
            "status": "active",
            "not_before": cert.not_valid_before_utc.isoformat(),
            "not_after": cert.not_valid_after_utc.isoformat(),
            "fingerprint_sha256": fingerprint(cert),
            "download_url": f"/api/v1/certificates/{serial}/download",
            "certificate_pem": pem(cert),
            "chain_pem": self.ca.chain_pem(),
            "private_key_pem": None,
            "revocation": None,
            "renewed_from": renewed_from,
        }
        return httpx.Response(201, json=self.certs[serial])

    def _out(self, serial: str) -> httpx.Response:
        if serial not in self.certs:
            return problem(404, "not-found", f"no certificate with serial {serial}")
        return httpx.Response(200, json=self.certs[serial])

    def _list(self, request: httpx.Request) -> httpx.Response:
        items = list(self.certs.values())
        if "service_id" in request.url.params:
            items = [c for c in items if c["service_id"] == request.url.params["service_id"]]
        limit = int(request.url.params["limit"])
        start = int(request.url.params.get("cursor", "0"))  # the fake's cursor: an index
        page = items[start : start + limit]
        following = str(start + limit) if start + limit < len(items) else None
        body = {
            "items": page,
            "next_cursor": following,
            "limit": limit,
            "total": len(items),
            "total_exact": True,
        }
        return httpx.Response(200, json=body)

    def _download(self, request: httpx.Request, serial: str) -> httpx.Response:
        cert = x509.load_pem_x509_certificate(self.certs[serial]["certificate_pem"].encode())
        if request.url.params.get("format") == "der":
            return httpx.Response(200, content=cert.public_bytes(Encoding.DER))
        return self._pem(pem(cert))

    def _renew(self, request: httpx.Request, serial: str) -> httpx.Response:
        if serial not in self.certs:
            return problem(404, "not-found", f"no certificate with serial {serial}")
        body = json.loads(request.content)
        response = self._issue(body, renewed_from=serial)
        self.certs[serial]["status"] = "superseded"
        return response

    def _revoke(self, request: httpx.Request, serial: str) -> httpx.Response:
        cert = self.certs[serial]
        if cert["revocation"]:
            return problem(409, "conflict", f"certificate {serial} is already revoked")
        reason = json.loads(request.content)["reason"]
        now = dt.datetime.now(dt.UTC).isoformat()
        cert.update(status="revoked", revocation={"reason": reason, "revoked_at": now})
        return httpx.Response(200, json=cert)

    # --- services, discovery, CA ----------------------------------------------------------

    def _register(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if body["service_id"] in self.services:
            return problem(409, "conflict", f"service {body['service_id']!r} exists")
        now = dt.datetime.now(dt.UTC).isoformat()
        self.services[body["service_id"]] = {**body, "created_at": now, "updated_at": now}
        return httpx.Response(201, json=self.services[body["service_id"]])

    def _service(self, service_id: str) -> httpx.Response:
        if service_id not in self.services:
            return problem(404, "not-found", f"no service {service_id!r}")
        return httpx.Response(200, json=self.services[service_id])

    def _update(self, request: httpx.Request, service_id: str) -> httpx.Response:
        self.services[service_id].update(json.loads(request.content))
        return httpx.Response(200, json=self.services[service_id])

    def _discover(self, request: httpx.Request) -> httpx.Response:
        kind = request.url.params.get("type")
        found = [s for s in self.services.values() if kind in (None, s.get("service_type"))]
        return httpx.Response(200, json=found)

    def _peer_cert(self, _r: httpx.Request, service_id: str) -> httpx.Response:
        cert = next(c for c in self.certs.values() if c["service_id"] == service_id)
        return httpx.Response(
            200,
            json={
                "certificate_pem": cert["certificate_pem"],
                "chain_pem": cert["chain_pem"],
                "serial": cert["serial"],
                "not_after": cert["not_after"],
                "spiffe_id": f"spiffe://test/{service_id}",
                "endpoints": self.services[service_id]["endpoints"],
            },
        )

    def _cas(self, _r: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            json=[
                {"name": "root", "kind": "root", "status": "active", "parent": None},
                {"name": "services", "kind": "intermediate", "status": "active", "parent": "root"},
            ],
        )

    def _pem(self, text: str) -> httpx.Response:
        return httpx.Response(200, text=text, headers={"content-type": "application/x-pem-file"})

    def _check(self, _r: httpx.Request, serial: str) -> httpx.Response:
        cert = self.certs[serial]
        return httpx.Response(
            200,
            json={
                "serial": serial,
                "issuer": "services",
                "status": cert["status"],
                "revoked": cert["revocation"] is not None,
                "reason": (cert["revocation"] or {}).get("reason"),
            },
        )

    def _crl(self, _r: httpx.Request, _issuer: str) -> httpx.Response:
        now = dt.datetime.now(dt.UTC)
        crl = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.ca.intermediate.subject)
            .last_update(now)
            .next_update(now + dt.timedelta(hours=1))
            .sign(self.ca.ca_key, hashes.SHA256())
        )
        return httpx.Response(200, content=crl.public_bytes(Encoding.DER))

    def _whoami(self, _r: httpx.Request) -> httpx.Response:
        return problem(401, "unauthenticated", "no client certificate was presented")
