"""One method per operation, against a fake that follows the API contract."""

from __future__ import annotations

import datetime as dt
import json
import stat

import pytest
from cryptography import x509

from pkiforge.client import (
    AsyncPkiClient,
    CertificateRequest,
    Identity,
    PkiClient,
    ServiceRegistration,
    ServiceUpdate,
)
from pkiforge.errors import AuthenticationFailed, Conflict, IntegrityError, NotFound
from tests.client.conftest import BASE
from tests.client.fake_api import TOKEN, FakeApi


def enrolled(client: PkiClient, identity: Identity) -> str:
    return client.enroll(TOKEN, ["billing.internal", "10.0.0.7"], identity).serial


def test_enroll_makes_the_key_here_and_stores_the_pair(
    client: PkiClient, api: FakeApi, identity: Identity
) -> None:
    cert = client.enroll(TOKEN, ["billing.internal", "10.0.0.7"], identity, service_id="billing")
    sent, bundle = api.requests[-2:]
    assert sent.headers["authorization"] == f"Bearer {TOKEN}"
    assert bundle.url.path == "/api/v1/ca/bundle"  # then the CA bundle, as the identity's
    body = json.loads(sent.content)
    assert "PRIVATE KEY" not in sent.content.decode()
    assert body["san_dns"] == ["billing.internal"] and body["san_ip"] == ["10.0.0.7"]
    assert body["common_name"] == "billing.internal" and body["service_id"] == "billing"
    assert stat.S_IMODE(identity.key.stat().st_mode) == 0o600
    leaf = identity.certificate()
    assert format(leaf.serial_number, "x") == cert.serial
    chain = x509.load_pem_x509_certificates(identity.cert.read_bytes())
    assert [c.subject.rfc4514_string() for c in chain[1:]] == ["CN=Fake Services"]
    assert x509.load_pem_x509_certificates(identity.ca.read_bytes()) == [
        api.ca.intermediate,
        api.ca.root,
    ]


def test_a_used_token_is_refused_and_nothing_is_written(
    client: PkiClient, identity: Identity
) -> None:
    enrolled(client, identity)
    other = Identity.in_dir(identity.cert.parent.parent / "other")
    with pytest.raises(AuthenticationFailed, match="already used"):
        client.enroll(TOKEN, ["billing.internal"], other)
    assert not other.cert.exists() and not other.key.exists()


def test_a_certificate_for_another_key_is_never_stored(
    client: PkiClient, api: FakeApi, identity: Identity
) -> None:
    original = api.ca.issue

    def wrong_key(csr: x509.CertificateSigningRequest) -> x509.Certificate:
        return original(x509.load_pem_x509_csr(_other_csr()))

    api.ca.issue = wrong_key  # type: ignore[method-assign]
    with pytest.raises(IntegrityError):
        client.enroll(TOKEN, ["billing.internal"], identity)
    assert not identity.cert.exists()


def _other_csr() -> bytes:
    from tests.conftest import data_file

    return data_file("csr-p256-b.pem")


def test_certificate_lifecycle(client: PkiClient, identity: Identity) -> None:
    serial = enrolled(client, identity)
    got = client.get_certificate(serial)
    assert got.serial == serial and got.not_after.tzinfo is not None
    assert got.not_after - got.not_before == dt.timedelta(hours=1)
    page = client.list_certificates(service_id="billing.internal", limit=10)
    assert [c.serial for c in page.items] == [serial] and page.total == 1
    assert client.download_certificate(serial).startswith(b"-----BEGIN CERTIFICATE")
    der = client.download_certificate(int(serial, 16), format="der")
    assert x509.load_der_x509_certificate(der).serial_number == int(serial, 16)
    revoked = client.revoke_certificate(serial, "keyCompromise")
    assert revoked.status == "revoked" and revoked.revocation is not None
    assert revoked.revocation.reason == "keyCompromise"
    assert client.check_revocation(serial).revoked
    with pytest.raises(Conflict, match="already revoked"):
        client.revoke_certificate(serial)
    with pytest.raises(NotFound):
        client.get_certificate("abcdef")


def test_request_without_token_or_certificate_is_unauthenticated(client: PkiClient) -> None:
    with pytest.raises(AuthenticationFailed):
        client.request_certificate(CertificateRequest(common_name="x.internal"))


def test_services_and_discovery(client: PkiClient, identity: Identity) -> None:
    enrolled(client, identity)
    registration = ServiceRegistration(
        service_id="billing.internal",
        service_name="Billing",
        service_type="api",
        endpoints=("https://billing.internal:9443",),
        names=("billing.internal",),
    )
    assert client.register_service(registration).endpoints == ("https://billing.internal:9443",)
    with pytest.raises(Conflict):
        client.register_service(registration)
    changed = client.update_service("billing.internal", ServiceUpdate(service_name="Billing 2"))
    assert changed.service_name == "Billing 2" and changed.service_type == "api"
    assert client.get_service("billing.internal").created_at is not None
    assert [s.service_id for s in client.list_services()] == ["billing.internal"]
    assert [s.service_id for s in client.discover("api")] == ["billing.internal"]
    assert client.discover("db") == ()
    peer = client.peer_certificate("billing.internal")
    assert peer.spiffe_id == "spiffe://test/billing.internal"
    assert client.discover_service("billing.internal").endpoints == registration.endpoints


def test_ca_material(client: PkiClient, api: FakeApi) -> None:
    assert [c.name for c in client.list_cas()] == ["root", "services"]
    assert x509.load_pem_x509_certificate(client.root_certificate().encode()) == api.ca.root
    assert len(x509.load_pem_x509_certificates(client.ca_chain("services").encode())) == 2
    assert client.crl("services").issuer == api.ca.intermediate.subject
    assert client.healthz()


def test_the_update_body_only_carries_what_changes() -> None:
    assert ServiceUpdate(endpoints=("https://a:1",)).to_json() == {"endpoints": ["https://a:1"]}


async def test_async_client_shares_the_operations(api: FakeApi, identity: Identity) -> None:
    async with AsyncPkiClient(BASE, verify=False, transport=api.transport()) as pki:
        cert = await pki.enroll(TOKEN, ["billing.internal"], identity)
        assert (await pki.get_certificate(cert.serial)).serial == cert.serial
        renewed = await pki.renew_certificate(cert.serial, csr=None or _other_csr().decode())
        assert renewed.renewed_from == cert.serial
        with pytest.raises(NotFound):
            await pki.get_service("nope")
        assert [c.name for c in await pki.list_cas()] == ["root", "services"]
