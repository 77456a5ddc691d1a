"""OCSP: openssl builds the requests and verifies the responses; our app only answers."""

from __future__ import annotations

import base64
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from pkiforge.api.app import create_app
from pkiforge.ca.authority import InitOptions
from pkiforge.ca.crl import parse_reason
from pkiforge.ca.lifecycle import IssueRequest
from pkiforge.settings import load_settings
from pkiforge.wiring import Pki, build_pki


@dataclass
class Ocsp:
    pki: Pki
    client: httpx.AsyncClient
    work: Path


@pytest.fixture(params=["p256", "rsa2048", "ed25519"])
async def ocsp_env(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Ocsp]:
    home = tmp_path / "home"
    home.mkdir()
    pki = build_pki(load_settings(home), b"ocsp-test-passphrase-123")
    pki.hierarchy.initialize(InitOptions(root_key_type="p256", intermediate_key_type=request.param))
    inter, root = pki.hierarchy.chain("services")
    (tmp_path / "inter.pem").write_bytes(inter.public_bytes(Encoding.PEM))
    (tmp_path / "root.pem").write_bytes(root.public_bytes(Encoding.PEM))
    for name in ("good", "bad"):
        key = ec.generate_private_key(ec.SECP256R1())
        record = pki.certificates.issue(
            IssueRequest(f"{name}.internal", public_key=key.public_key())
        )
        assert record.certificate is not None
        (tmp_path / f"{name}.pem").write_bytes(record.certificate.public_bytes(Encoding.PEM))
        if name == "bad":
            pki.revocation.revoke(record.serial, parse_reason("keyCompromise"))
    app = create_app(pki.settings, pki)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://t")
    yield Ocsp(pki, client, tmp_path)
    await client.aclose()
    pki.close()


def openssl(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)


async def ask(env: Ocsp, cert: str, *, get: bool = False, extra: tuple[str, ...] = ()) -> str:
    made = openssl(
        "ocsp",
        "-issuer",
        "inter.pem",
        "-cert",
        cert,
        "-reqout",
        "req.der",
        *extra,
        "-no_nonce",
        cwd=env.work,
    )
    assert made.returncode == 0, made.stderr
    der = (env.work / "req.der").read_bytes()
    if get:
        response = await env.client.get("/api/v1/ocsp/" + base64.b64encode(der).decode())
    else:
        response = await env.client.post(
            "/api/v1/ocsp", content=der, headers={"content-type": "application/ocsp-request"}
        )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/ocsp-response"
    (env.work / "resp.der").write_bytes(response.content)
    checked = openssl(
        "ocsp",
        "-no_nonce",
        "-respin",
        "resp.der",
        "-issuer",
        "inter.pem",
        "-cert",
        cert,
        "-CAfile",
        "root.pem",
        "-VAfile",
        "inter.pem",
        *extra,
        cwd=env.work,
    )
    assert checked.returncode == 0 and "Response verify OK" in checked.stderr, checked.stderr
    return checked.stdout


async def test_good_and_revoked(ocsp_env: Ocsp) -> None:
    assert "good.pem: good" in await ask(ocsp_env, "good.pem")
    revoked = await ask(ocsp_env, "bad.pem", get=True)
    assert "bad.pem: revoked" in revoked and "Reason: keyCompromise" in revoked


async def test_unknown_serial_from_our_issuer(ocsp_env: Ocsp) -> None:
    made = openssl(
        "ocsp", "-issuer", "inter.pem", "-serial", "0x1234", "-reqout", "req.der", cwd=ocsp_env.work
    )
    assert made.returncode == 0
    response = await ocsp_env.client.post(
        "/api/v1/ocsp",
        content=(ocsp_env.work / "req.der").read_bytes(),
        headers={"content-type": "application/ocsp-request"},
    )
    (ocsp_env.work / "resp.der").write_bytes(response.content)
    text = openssl(
        "ocsp",
        "-no_nonce",
        "-respin",
        "resp.der",
        "-issuer",
        "inter.pem",
        "-serial",
        "0x1234",
        "-CAfile",
        "root.pem",
        "-VAfile",
        "inter.pem",
        cwd=ocsp_env.work,
    ).stdout
    assert "0x1234: unknown" in text


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"not der", "application/ocsp-request", "malformedrequest"),
        (b"x" * 20000, "application/ocsp-request", None),
    ],
    ids=["garbage", "too-large"],
)
async def test_bad_requests(
    ocsp_env: Ocsp, body: bytes, content_type: str, status: str | None
) -> None:
    response = await ocsp_env.client.post(
        "/api/v1/ocsp", content=body, headers={"content-type": content_type}
    )
    if status is None:
        assert response.status_code == 400
        assert response.headers["content-type"] == "application/problem+json"
        return
    assert response.status_code == 200
    (ocsp_env.work / "resp.der").write_bytes(response.content)
    text = openssl("ocsp", "-respin", "resp.der", "-resp_text", "-noverify", cwd=ocsp_env.work)
    assert status in (text.stdout + text.stderr).lower().replace(" ", "")


async def test_wrong_content_type_is_a_problem(ocsp_env: Ocsp) -> None:
    response = await ocsp_env.client.post(
        "/api/v1/ocsp", content=b"x", headers={"content-type": "text/plain"}
    )
    assert response.status_code == 400
    assert response.json()["field"] == "content-type"


async def test_nonce_is_echoed(ocsp_env: Ocsp) -> None:
    made = openssl(
        "ocsp",
        "-issuer",
        "inter.pem",
        "-cert",
        "good.pem",
        "-reqout",
        "req.der",
        "-req_text",
        cwd=ocsp_env.work,
    )
    asked = made.stdout.split("OCSP Nonce:")[1].split()[0]
    response = await ocsp_env.client.post(
        "/api/v1/ocsp",
        content=(ocsp_env.work / "req.der").read_bytes(),
        headers={"content-type": "application/ocsp-request"},
    )
    (ocsp_env.work / "resp.der").write_bytes(response.content)
    shown = openssl("ocsp", "-respin", "resp.der", "-resp_text", "-noverify", cwd=ocsp_env.work)
    assert shown.stdout.split("OCSP Nonce:")[1].split()[0] == asked
