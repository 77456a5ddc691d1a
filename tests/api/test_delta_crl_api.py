"""`GET /api/v1/crl/{issuer}/delta`: 409 while delta CRLs are off, else a delta CRL that
completes the full CRL served beside it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509

from pkiforge.api.deps import mtls_verifier
from pkiforge.clock import FixedClock
from pkiforge.settings import CRLSettings
from pkiforge.wiring import build_app, build_pki
from tests.ca.helpers import NOW, PASSPHRASE, csr_bytes, make_pki

from .helpers import Api, fake_verifier


@pytest.fixture
async def delta_api(tmp_path: Path) -> AsyncIterator[Api]:
    pki = make_pki(tmp_path / "home", clock=FixedClock(NOW))
    settings = pki.settings.model_copy(update={"crl": CRLSettings(delta=True)})
    pki.close()
    pki = build_pki(settings, PASSPHRASE, FixedClock(NOW))
    app = build_app(settings, pki)
    app.dependency_overrides[mtls_verifier] = fake_verifier
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="https://testserver")
    yield Api(pki, app, client)
    await client.aclose()
    pki.close()


async def test_the_delta_route_answers_409_while_deltas_are_off(api: Api) -> None:
    response = await api.client.get("/api/v1/crl/services/delta")
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert "crl.delta" in response.json()["detail"]


async def test_the_delta_route_serves_a_delta_of_the_full_crl(delta_api: Api) -> None:
    pki = delta_api.pki
    record = pki.certificates.issue(
        pki.certificates.request_from_csr(csr_bytes("p256"), service_id="web")
    )
    pki.revocation.revoke(record.serial, x509.ReasonFlags.key_compromise)
    response = await delta_api.client.get("/api/v1/crl/services/delta")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/pkix-crl"
    delta = x509.load_der_x509_crl(response.content)
    full = x509.load_der_x509_crl((await delta_api.client.get("/api/v1/crl/services")).content)
    base = delta.extensions.get_extension_for_class(x509.DeltaCRLIndicator).value.crl_number
    assert base == full.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    assert record.serial in {r.serial_number for r in full} | {r.serial_number for r in delta}
    pem = await delta_api.client.get("/api/v1/crl/services/delta?format=pem")
    assert pem.status_code == 200
    assert pem.content.startswith(b"-----BEGIN X509 CRL-----")
