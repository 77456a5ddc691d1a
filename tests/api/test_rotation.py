"""Rotating an intermediate, checked with openssl: old and new leaves verify against the
served bundle, each key's CRL lists its own revocations with its own numbering, and OCSP
answers for both generations."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from fastapi import FastAPI

from pkiforge.api.deps import mtls_verifier
from pkiforge.ca.crl import parse_reason
from pkiforge.ca.hierarchy import InitOptions
from pkiforge.ca.issue_request import IssueRequest
from pkiforge.ca.models import CAStatus, CertificateRecord
from pkiforge.clock import SystemClock
from pkiforge.wiring import Pki, build_app, build_pki
from tests.ca.helpers import PASSPHRASE, make_settings

from .helpers import SERVICE_HEADER, WHITELIST, fake_verifier, make_api


@dataclass
class Rotated:
    pki: Pki
    app: FastAPI
    work: Path
    leaves: dict[str, CertificateRecord]  # "old-*" from the predecessor, "new-*" its successor

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(self.app), base_url="https://t")


def openssl(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)


def as_ops() -> dict[str, str]:
    return {SERVICE_HEADER: "ops"}


def issue(pki: Pki, name: str, work: Path) -> CertificateRecord:
    key = ec.generate_private_key(ec.SECP256R1())
    record = pki.certificates.issue(IssueRequest(f"{name}.internal", public_key=key.public_key()))
    assert record.certificate is not None
    (work / f"{name}.pem").write_bytes(record.certificate.public_bytes(Encoding.PEM))
    return record


@pytest.fixture(scope="module")
def rotated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rotated]:
    """Leaves from `services`, a rotation over the API, leaves from its successor; one of
    each generation revoked after the rotation. Tests that change more use leaves of their own."""
    work = tmp_path_factory.mktemp("rotation")
    home = work / "home"
    home.mkdir()
    (home / "service_whitelist.yaml").write_text(yaml.safe_dump(WHITELIST))
    pki = build_pki(make_settings(home), PASSPHRASE, SystemClock())
    pki.hierarchy.initialize(InitOptions())
    app = build_app(pki.settings, pki)
    app.dependency_overrides[mtls_verifier] = fake_verifier
    env = Rotated(pki, app, work, {})
    env.leaves |= {n: issue(pki, n, work) for n in ("old-good", "old-bad", "old-late", "old-renew")}

    async def over_http() -> None:
        async with env.client() as client:
            r = await client.post("/api/v1/ca/services/rotate", headers=as_ops(), json={})
            assert r.status_code == 200, r.text
            assert r.json()["successor"]["name"] == "services.2"
            assert r.json()["retired"] == ["services"]
            env.leaves |= {n: issue(pki, n, work) for n in ("new-good", "new-bad")}
            for name in ("old-bad", "new-bad"):
                pki.revocation.revoke(env.leaves[name].serial, parse_reason("keyCompromise"))
            bundle = await client.get("/api/v1/ca/services/chain")
            assert bundle.status_code == 200
            (work / "bundle.pem").write_bytes(bundle.content)
            for issuer in ("services", "services.2"):
                crl = await client.get(f"/api/v1/crl/{issuer}")
                assert crl.status_code == 200
                (work / f"{issuer}.crl").write_bytes(crl.content)

    asyncio.run(over_http())
    for name in ("root", "services", "services.2"):
        cert = pki.hierarchy.get(name).certificate
        assert cert is not None
        (work / f"{name}.pem").write_bytes(cert.public_bytes(Encoding.PEM))
    yield env
    pki.close()


def test_the_successor_issues_under_the_same_name_with_a_new_key(rotated: Rotated) -> None:
    old = rotated.pki.hierarchy.get("services")
    new = rotated.pki.hierarchy.get("services.2")
    assert old.status is CAStatus.RETIRED and new.status is CAStatus.ACTIVE
    assert old.certificate is not None and new.certificate is not None
    assert new.certificate.subject == old.certificate.subject  # same name and purpose
    assert new.certificate.public_key() != old.certificate.public_key()
    assert new.key_ref != old.key_ref
    assert [rotated.leaves[n].issuer for n in ("old-good", "new-good")] == [
        "services",
        "services.2",
    ]
    new_leaf = rotated.leaves["new-good"].certificate
    assert new_leaf is not None
    new_leaf.verify_directly_issued_by(new.certificate)
    aki = new_leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = new.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    # each key carries its own distribution points: an old leaf's CRL URL stays its issuer's
    cdp = new_leaf.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert cdp[0].full_name is not None
    assert str(cdp[0].full_name[0].value).endswith("/crl/services.2.crl")


def test_the_rotation_is_audited(rotated: Rotated) -> None:
    with rotated.pki.store.transaction(readonly=True) as tx:
        entries = [e for e in tx.audit.iterate() if e.action == "ca.rotated"]
    assert len(entries) == 1
    entry = entries[0]
    assert entry.subject == "services" and entry.actor == "service:ops"
    assert entry.details["predecessor"] == "services"
    assert entry.details["successor"] == "services.2"


def test_served_bundle_is_current_then_previous_then_root(rotated: Rotated) -> None:
    certs = x509.load_pem_x509_certificates((rotated.work / "bundle.pem").read_bytes())
    names = ["services.2", "services", "root"]
    expected = [rotated.pki.hierarchy.get(n).certificate for n in names]
    assert certs == expected


@pytest.mark.parametrize("leaf", ["old-good", "new-good"])
def test_openssl_verifies_old_and_new_leaves_against_the_bundle(
    rotated: Rotated, leaf: str
) -> None:
    plain = openssl("verify", "-CAfile", "bundle.pem", f"{leaf}.pem", cwd=rotated.work)
    assert plain.returncode == 0 and f"{leaf}.pem: OK" in plain.stdout, plain.stderr
    # the root as the only anchor, the bundle as the intermediates a server might not send
    untrusted = openssl(
        "verify", "-CAfile", "root.pem", "-untrusted", "bundle.pem", f"{leaf}.pem", cwd=rotated.work
    )
    assert untrusted.returncode == 0, untrusted.stderr


@pytest.mark.parametrize(
    ("leaf", "good"),
    [("old-good", True), ("old-bad", False), ("new-good", True), ("new-bad", False)],
)
def test_openssl_crl_check_with_both_issuers_crls(rotated: Rotated, leaf: str, good: bool) -> None:
    for issuer in ("services", "services.2"):
        pem = openssl(
            "crl", "-inform", "DER", "-in", f"{issuer}.crl", "-out", f"{issuer}.crl.pem",
            cwd=rotated.work,
        )  # fmt: skip
        assert pem.returncode == 0, pem.stderr
    checked = openssl(
        "verify", "-crl_check", "-CAfile", "bundle.pem",
        "-CRLfile", "services.crl.pem", "-CRLfile", "services.2.crl.pem", f"{leaf}.pem",
        cwd=rotated.work,
    )  # fmt: skip
    if good:
        assert checked.returncode == 0, checked.stdout + checked.stderr
    else:
        assert checked.returncode != 0
        assert "certificate revoked" in checked.stdout + checked.stderr


def crl_text(work: Path, issuer: str, signer: str) -> str:
    """The CRL as openssl prints it, after openssl checked its signature with `signer`."""
    out = openssl(
        "crl", "-inform", "DER", "-in", f"{issuer}.crl", "-CAfile", signer, "-noout", "-text",
        cwd=work,
    )  # fmt: skip
    assert out.returncode == 0 and "verify OK" in out.stderr, out.stderr
    return out.stdout


def test_each_issuer_signs_its_own_crl_with_its_own_numbers(rotated: Rotated) -> None:
    work, leaves = rotated.work, rotated.leaves
    (work / "old-chain.pem").write_bytes(
        (work / "services.pem").read_bytes() + (work / "root.pem").read_bytes()
    )
    (work / "new-chain.pem").write_bytes(
        (work / "services.2.pem").read_bytes() + (work / "root.pem").read_bytes()
    )
    old = crl_text(work, "services", "old-chain.pem")
    new = crl_text(work, "services.2", "new-chain.pem")
    assert f"{leaves['old-bad'].serial:X}" in old.upper()
    assert f"{leaves['new-bad'].serial:X}" not in old.upper()
    assert f"{leaves['new-bad'].serial:X}" in new.upper()
    assert f"{leaves['old-bad'].serial:X}" not in new.upper()
    # the predecessor's key cannot pass for the successor's (same subject name)
    wrong = openssl(
        "crl", "-inform", "DER", "-in", "services.2.crl", "-CAfile", "old-chain.pem", "-noout",
        cwd=work,
    )  # fmt: skip
    assert "verify OK" not in wrong.stderr
    # numbering goes on per key: revoke one more old leaf and the predecessor's number grows
    before = rotated.pki.revocation.latest_crl("services").number
    new_before = rotated.pki.revocation.latest_crl("services.2").number
    extra = issue(rotated.pki, "new-extra", work)
    assert extra.issuer == "services.2"
    rotated.pki.revocation.revoke(leaves["old-late"].serial, parse_reason("superseded"))
    signed = rotated.pki.revocation.generate_crl("services")  # the retired key still signs
    assert signed.number == before + 1
    listed = x509.load_der_x509_crl(signed.der)
    assert listed.get_revoked_certificate_by_serial_number(leaves["old-late"].serial)
    assert rotated.pki.revocation.latest_crl("services.2").number == new_before


async def ocsp(rotated: Rotated, leaf: str, issuer: str) -> str:
    work = rotated.work
    made = openssl(
        "ocsp", "-issuer", f"{issuer}.pem", "-cert", f"{leaf}.pem", "-reqout", "req.der",
        "-no_nonce", cwd=work,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    async with rotated.client() as client:
        r = await client.post(
            "/api/v1/ocsp",
            content=(work / "req.der").read_bytes(),
            headers={"content-type": "application/ocsp-request"},
        )
    assert r.status_code == 200
    (work / "resp.der").write_bytes(r.content)
    checked = openssl(
        "ocsp", "-no_nonce", "-respin", "resp.der", "-issuer", f"{issuer}.pem",
        "-cert", f"{leaf}.pem", "-CAfile", "root.pem", "-VAfile", f"{issuer}.pem", cwd=work,
    )  # fmt: skip
    assert checked.returncode == 0 and "Response verify OK" in checked.stderr, checked.stderr
    return checked.stdout


@pytest.mark.parametrize(
    ("leaf", "issuer", "status"),
    [
        ("old-good", "services", "good"),
        ("old-bad", "services", "revoked"),
        ("new-good", "services.2", "good"),
        ("new-bad", "services.2", "revoked"),
    ],
)
async def test_openssl_ocsp_for_both_generations(
    rotated: Rotated, leaf: str, issuer: str, status: str
) -> None:
    assert f"{leaf}.pem: {status}" in await ocsp(rotated, leaf, issuer)


async def test_ca_endpoints_serve_the_successor(rotated: Rotated) -> None:
    new = rotated.pki.hierarchy.get("services.2").certificate
    assert new is not None
    async with rotated.client() as client:
        for path in ("/api/v1/ca/services", "/api/v1/ca/intermediate", "/api/v1/ca/services.2"):
            r = await client.get(path)
            assert r.status_code == 200, path
            assert x509.load_pem_x509_certificate(r.content) == new, path
        info = await client.get("/api/v1/ca/services/info")
        assert info.json()["status"] == "retired"
        default = await client.get("/api/v1/crl")
        by_name = await client.get("/api/v1/crl/services.2")
    assert default.content == by_name.content


def test_an_old_leaf_renews_from_the_successor(rotated: Rotated) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    old = rotated.leaves["old-renew"]
    renewed = rotated.pki.certificates.issue(
        IssueRequest("old-renew.internal", public_key=key.public_key(), renews=old.serial)
    )
    assert renewed.issuer == "services.2"


@pytest.mark.parametrize(
    ("service", "status"), [(None, 401), ("billing", 403)], ids=["anonymous", "service"]
)
async def test_only_an_admin_rotates(tmp_path: Path, service: str | None, status: int) -> None:
    api = make_api(tmp_path / "home")
    try:
        r = await api.client.post("/api/v1/ca/services/rotate", headers=api.as_(service))
        assert r.status_code == status, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert api.pki.hierarchy.get("services").status is CAStatus.ACTIVE
        assert [ca.name for ca in api.pki.hierarchy.all()] == ["root", "services"]
    finally:
        await api.client.aclose()
        api.pki.close()


async def test_the_root_is_not_rotated(rotated: Rotated) -> None:
    async with rotated.client() as client:
        r = await client.post("/api/v1/ca/root/rotate", headers=as_ops())
        assert r.status_code == 409 and "the root is not rotated here" in r.json()["detail"]
        r = await client.post("/api/v1/ca/nope/rotate", headers=as_ops())
        assert r.status_code == 404


@pytest.mark.parametrize(
    "body",
    [{"key_type": "dsa1024"}, {"validity_days": 0}, {"successor": "x"}],
    ids=["key-type", "validity", "unknown-field"],
)
async def test_a_bad_rotation_request_is_a_422(rotated: Rotated, body: dict[str, object]) -> None:
    async with rotated.client() as client:
        r = await client.post("/api/v1/ca/services/rotate", headers=as_ops(), json=body)
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] in body
    assert r.headers["content-type"] == "application/problem+json"
    assert [ca.name for ca in rotated.pki.hierarchy.all()] == ["root", "services", "services.2"]
