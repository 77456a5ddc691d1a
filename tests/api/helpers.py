"""Helpers for the API tests: an in-process app with a fake mTLS identity, CSRs, whitelists."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from fastapi import FastAPI, Request

from pkiforge.api.deps import IdentityVerifier, StateDep, mtls_verifier
from pkiforge.auth.mtls import ServiceIdentity
from pkiforge.errors import AuthenticationFailed
from pkiforge.settings import AcmeSettings, RateLimitSettings, StorageSettings
from pkiforge.wiring import Pki, build_app
from tests.ca.helpers import make_pki
from tests.conftest import DATA

SERVICE_HEADER = "x-test-service"  # the fake identity: only the ASGI tests use it

WHITELIST: dict[str, Any] = {
    "services": [
        {
            "service_id": "billing",
            "max_certificates": 3,
            "allowed_operations": [
                "request",
                "renew",
                "revoke",
                "download",
                "register",
                "update",
                "discover",
                "list",
            ],
            "allowed_names": ["billing.internal", "*.billing.internal"],
            "max_validity": "200d",
        },
        {
            "service_id": "orders",
            "allowed_operations": [
                "request",
                "renew",
                "revoke",
                "download",
                "register",
                "update",
                "discover",
            ],
            "server_generated_keys": True,
        },
        {"service_id": "readonly", "allowed_operations": ["download"]},
        {"service_id": "ops", "allowed_operations": ["admin"]},
    ],
    "patterns": [
        {
            "pattern": "test-*",
            "max_certificates": 1,
            "allowed_operations": ["request", "renew", "revoke", "download", "register"],
            "allowed_names": ["{service_id}.test.internal"],
            "profiles": ["service"],
        }
    ],
}


def key_pem(name: str = "p256") -> bytes:
    return (DATA / f"key-{name}.pem").read_bytes()


def make_csr(cn: str, names: Sequence[str] = (), key: str = "p256") -> str:
    """A PEM CSR for `cn` and DNS `names`, signed with a committed key."""
    private = serialization.load_pem_private_key(key_pem(key), None)
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    )
    if names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
        )
    return builder.sign(private, hashes.SHA256()).public_bytes(Encoding.PEM).decode()  # type: ignore[arg-type]


def fake_identity(request: Request, state: StateDep) -> ServiceIdentity:
    """Stands in for mTLS: the service named by a test header."""
    service = request.headers.get(SERVICE_HEADER)
    if not service:
        raise AuthenticationFailed("a client certificate is required", reason="no-cert")
    return ServiceIdentity(service, 1, "00", dt.datetime(2099, 1, 1, tzinfo=dt.UTC))


async def fake_verifier() -> IdentityVerifier:
    """Put in `app.dependency_overrides[mtls_verifier]`: callers named by a header, no TLS."""
    return fake_identity


@dataclass
class Api:
    pki: Pki
    app: FastAPI
    client: httpx.AsyncClient

    def as_(self, service: str | None) -> dict[str, str]:
        return {SERVICE_HEADER: service} if service else {}


def make_api(
    home: Path,
    *,
    whitelist: dict[str, Any] | None = None,
    limit: int = 100,
    max_body: int = 64 * 1024,
    sqlite_synchronous: Literal["normal", "full"] = "full",
    threads: int | None = None,
    storage: StorageSettings | None = None,
    acme: AcmeSettings | None = None,
) -> Api:
    """A PKI in `home` with a whitelist file, an app and a TestClient (fake identity)."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "service_whitelist.yaml").write_text(yaml.safe_dump(whitelist or WHITELIST))
    pki = make_pki(home, sqlite_synchronous=sqlite_synchronous)
    settings = pki.settings.model_copy(
        update={
            "rate_limits": RateLimitSettings(issuance_limit=limit),
            "server": pki.settings.server.model_copy(
                update={"max_body_bytes": max_body, "threads": threads}
            ),
            "storage": storage or pki.settings.storage,
            "acme": acme or pki.settings.acme,
        }
    )
    app = build_app(settings, pki)
    app.dependency_overrides[mtls_verifier] = fake_verifier
    transport = httpx.ASGITransport(app, raise_app_exceptions=False, client=("10.9.8.7", 40000))
    client = httpx.AsyncClient(transport=transport, base_url="https://testserver")
    return Api(pki, app, client)
