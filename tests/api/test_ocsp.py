"""OCSP: openssl builds the requests and verifies the responses; our app only answers."""

from __future__ import annotations

import base64
import re
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from pkiforge.ca.crl import parse_reason
from pkiforge.ca.hierarchy import InitOptions
from pkiforge.ca.issue_request import IssueRequest
from pkiforge.ca.ocsp import OCSPResponder
from pkiforge.settings import load_settings
from pkiforge.wiring import Pki, build_app, build_pki

from .server import Server

ONE_KEY_TYPE = pytest.mark.parametrize("ocsp_env", ["p256"], indirect=True)


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
    app = build_app(pki.settings, pki)
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


def nonce_request(env: Ocsp) -> str:
    """Write req.der, a request with a nonce as openssl makes by default; return the nonce."""
    made = openssl(
        "ocsp", "-issuer", "inter.pem", "-cert", "good.pem", "-reqout", "req.der", "-req_text",
        cwd=env.work,
    )  # fmt: skip
    return made.stdout.split("OCSP Nonce:")[1].split()[0]


async def post_request(env: Ocsp) -> None:
    """POST req.der, write the answer to resp.der."""
    response = await env.client.post(
        "/api/v1/ocsp",
        content=(env.work / "req.der").read_bytes(),
        headers={"content-type": "application/ocsp-request"},
    )
    (env.work / "resp.der").write_bytes(response.content)


@ONE_KEY_TYPE
async def test_a_nonce_gets_the_cached_answer_by_default(ocsp_env: Ocsp) -> None:
    """RFC 8954 lets a responder leave the nonce out; openssl's client, which sends one
    unless told -no_nonce, warns and still verifies the answer."""
    nonce_request(ocsp_env)
    await post_request(ocsp_env)
    checked = openssl(
        "ocsp", "-reqin", "req.der", "-respin", "resp.der", "-issuer", "inter.pem",
        "-cert", "good.pem", "-CAfile", "root.pem", cwd=ocsp_env.work,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    assert "WARNING: no nonce in response" in checked.stdout + checked.stderr
    assert "Response verify OK" in checked.stderr and "good.pem: good" in checked.stdout


@ONE_KEY_TYPE
async def test_a_nonce_is_echoed_when_configured_fresh(ocsp_env: Ocsp) -> None:
    ocsp_env.pki.ctx.config = replace(
        ocsp_env.pki.ctx.config, ocsp=replace(ocsp_env.pki.ctx.config.ocsp, fresh_nonce=True)
    )
    asked = nonce_request(ocsp_env)
    await post_request(ocsp_env)
    shown = openssl("ocsp", "-respin", "resp.der", "-resp_text", "-noverify", cwd=ocsp_env.work)
    assert shown.stdout.split("OCSP Nonce:")[1].split()[0] == asked
    checked = openssl(
        "ocsp", "-reqin", "req.der", "-respin", "resp.der", "-CAfile", "root.pem",
        "-verify_other", "inter.pem",
        cwd=ocsp_env.work,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    assert "Response verify OK" in checked.stderr
    assert "WARNING" not in checked.stdout + checked.stderr


def responder_status(env: Ocsp, der: bytes) -> str:
    """The responseStatus of a DER OCSP response as openssl prints it, in lower case."""
    (env.work / "resp.der").write_bytes(der)
    shown = openssl("ocsp", "-respin", "resp.der", "-resp_text", "-noverify", cwd=env.work)
    text = shown.stdout + shown.stderr
    found = re.search(r"(?:Responder Error|OCSP Response Status): (\w+)", text)
    assert found is not None, text
    return found.group(1).lower()


@ONE_KEY_TYPE
@pytest.mark.parametrize("get", [False, True], ids=["post", "get"])
async def test_two_certificates_in_one_request_is_malformed(ocsp_env: Ocsp, get: bool) -> None:
    made = openssl(
        "ocsp", "-issuer", "inter.pem", "-cert", "good.pem", "-cert", "bad.pem",
        "-reqout", "req.der", cwd=ocsp_env.work,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    der = (ocsp_env.work / "req.der").read_bytes()
    if get:
        response = await ocsp_env.client.get("/api/v1/ocsp/" + quote(base64.b64encode(der)))
    else:
        response = await ocsp_env.client.post(
            "/api/v1/ocsp", content=der, headers={"content-type": "application/ocsp-request"}
        )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/ocsp-response"
    assert responder_status(ocsp_env, response.content) == "malformedrequest"


@ONE_KEY_TYPE
@pytest.mark.parametrize(
    "path",
    [
        "not*base64",
        "%25%25%25",
        "AAAA%3D%3D%3D",
        base64.b64encode(b"not der").decode(),
        base64.b64encode(b"\x30\x03\x02\x01\x00").decode(),
        "",
        "a/b/c",
        "%C3%A9t%C3%A9",
    ],
    ids=["symbols", "percents", "bad-padding", "not-der", "not-ocsp-der", "empty", "slashes",
         "non-ascii"],
)  # fmt: skip
async def test_get_path_that_is_no_request_is_malformed(ocsp_env: Ocsp, path: str) -> None:
    response = await ocsp_env.client.get("/api/v1/ocsp/" + path)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/ocsp-response"
    assert responder_status(ocsp_env, response.content) == "malformedrequest"


def der(tag: int, body: bytes) -> bytes:
    """One DER TLV (definite length)."""
    size = len(body).to_bytes((len(body).bit_length() + 7) // 8 or 1, "big")
    return bytes([tag]) + (size if len(body) < 128 else bytes([0x80 | len(size)]) + size) + body


def der_body(value: bytes) -> bytes:
    """The contents of one DER TLV."""
    first = value[1]
    if first < 128:
        return value[2 : 2 + first]
    width = first & 0x7F
    return value[2 + width : 2 + width + int.from_bytes(value[2 : 2 + width], "big")]


@ONE_KEY_TYPE
def test_requests_cryptography_reads_only_in_part_get_an_ocsp_answer(ocsp_env: Ocsp) -> None:
    """A repeated extension is malformed; a CertID hashed with SHA-3 cannot be ours."""
    made = openssl(
        "ocsp", "-issuer", "inter.pem", "-sha3-256", "-cert", "good.pem", "-reqout", "sha3.der",
        cwd=ocsp_env.work,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    responder = OCSPResponder(ocsp_env.pki.ctx)
    sha3 = responder.respond((ocsp_env.work / "sha3.der").read_bytes())
    assert responder_status(ocsp_env, sha3) == "unauthorized"

    made = openssl(
        "ocsp", "-issuer", "inter.pem", "-cert", "good.pem", "-reqout", "req.der", "-no_nonce",
        cwd=ocsp_env.work,
    )  # fmt: skip
    request_list = der_body(der_body((ocsp_env.work / "req.der").read_bytes()))
    nonce = der(0x30, der(0x06, bytes.fromhex("2b0601050507300102")) + der(0x04, der(0x04, b"n")))
    twice = der(0x30, der(0x30, request_list + der(0xA2, der(0x30, nonce + nonce))))
    assert responder_status(ocsp_env, responder.respond(twice)) == "malformedrequest"


@pytest.fixture(scope="module")
def served(https_server: Server) -> Server:
    """The real server, with the issuer chain and two leaves written to its home."""
    home = https_server.home
    (home.path / "chain.pem").write_text(home.cli("ca", "chain", "services").stdout)
    home.client_cert("billing", "billing.internal")
    home.client_cert("orders", "orders.internal")
    return https_server


def test_openssl_client_against_the_server(served: Server) -> None:
    """`openssl ocsp -url` (an independent client) over real HTTPS: one CertID is answered,
    two are malformedRequest (cryptography builds single responses only)."""
    home = served.home.path
    url = ("-url", f"{served.url}/api/v1/ocsp", "-issuer", "chain.pem")
    trust = ("-CAfile", str(served.home.root), "-VAfile", "chain.pem")
    one = openssl("ocsp", *url, "-cert", "billing.pem", *trust, cwd=home)
    assert "billing.pem: good" in one.stdout, one.stdout + one.stderr
    assert "Response verify OK" in one.stderr
    two = openssl("ocsp", *url, "-cert", "billing.pem", "-cert", "orders.pem", *trust, cwd=home)
    assert two.returncode != 0
    assert "Responder Error: malformedrequest (1)" in two.stdout + two.stderr


def test_openssl_good_revoked_and_unknown_over_mtls(served: Server) -> None:
    """The HTTPS API answers from the delegated responder and the cache: a certificate
    revoked after its `good` answer was cached is answered revoked, with its reason."""
    home = served.home.path
    served.home.client_cert("payroll", "payroll.internal")
    url = ("-url", f"{served.url}/api/v1/ocsp", "-issuer", "chain.pem")
    trust = ("-CAfile", str(served.home.root))
    first = openssl("ocsp", *url, "-cert", "payroll.pem", *trust, cwd=home)
    assert "payroll.pem: good" in first.stdout, first.stdout + first.stderr
    shown = openssl("x509", "-in", "payroll.pem", "-noout", "-serial", cwd=home).stdout
    served.home.cli("cert", "revoke", shown.strip().split("=")[1], "--reason", "superseded")
    revoked = openssl("ocsp", *url, "-cert", "payroll.pem", *trust, cwd=home)
    assert "payroll.pem: revoked" in revoked.stdout, revoked.stdout + revoked.stderr
    assert "Reason: superseded" in revoked.stdout and "Response verify OK" in revoked.stderr
    unknown = openssl("ocsp", *url, "-serial", "0x1234", *trust, cwd=home)
    assert "0x1234: unknown" in unknown.stdout and "Response verify OK" in unknown.stderr


@pytest.mark.parametrize(
    "path",
    ["not*base64", "%25%25", base64.b64encode(b"not der").decode(), "two"],
    ids=["symbols", "percents", "not-der", "two-certificates"],
)
def test_get_with_curl_against_the_server(served: Server, path: str) -> None:
    """GET /api/v1/ocsp/{base64} answers any path with an OCSP response, never problem+json."""
    home = served.home.path
    if path == "two":
        made = openssl(
            "ocsp", "-issuer", "chain.pem", "-cert", "billing.pem", "-cert", "orders.pem",
            "-reqout", "two.der", cwd=home,
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
        path = quote(base64.b64encode((home / "two.der").read_bytes()), safe="")
    out, headers = home / "resp.der", home / "headers.txt"
    status, _ = served.curl(f"/api/v1/ocsp/{path}", "-o", str(out), "-D", str(headers))
    assert status == 200
    assert "content-type: application/ocsp-response" in headers.read_text().lower()
    shown = openssl("ocsp", "-respin", str(out), "-resp_text", "-noverify", cwd=home)
    assert "Responder Error: malformedrequest (1)" in shown.stdout + shown.stderr
