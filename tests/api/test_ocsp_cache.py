"""OCSP answers signed by each CA's delegated responder and cached in the store: openssl and
pkilint check the responder certificate, a revocation is answered at once, GET carries the
RFC 5019 caching headers."""

from __future__ import annotations

import base64
import datetime as dt
import subprocess
from dataclasses import replace
from email.utils import parsedate_to_datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp

from pkiforge.ca.crl import parse_reason
from tests.ca.lint import lint_certificate

from .test_ocsp import Ocsp, ocsp_env, openssl, responder_status

__all__ = ["ocsp_env"]  # the fixture, shared with test_ocsp.py

pytestmark = pytest.mark.parametrize("ocsp_env", ["p256"], indirect=True)


def request_for(env: Ocsp, *target: str) -> bytes:
    made = openssl(
        "ocsp", "-issuer", "inter.pem", *target, "-reqout", "req.der", "-no_nonce", cwd=env.work
    )
    assert made.returncode == 0, made.stderr
    return (env.work / "req.der").read_bytes()


def check(env: Ocsp, response: bytes, *target: str) -> subprocess.CompletedProcess[str]:
    """openssl verifies the answer with the root as its only trust anchor."""
    (env.work / "resp.der").write_bytes(response)
    checked = openssl(
        "ocsp", "-no_nonce", "-respin", "resp.der", "-issuer", "inter.pem", *target,
        "-CAfile", "root.pem", "-resp_text", cwd=env.work,
    )  # fmt: skip
    assert checked.returncode == 0 and "Response verify OK" in checked.stderr, checked.stderr
    return checked


async def post(env: Ocsp, der: bytes) -> bytes:
    response = await env.client.post(
        "/api/v1/ocsp", content=der, headers={"content-type": "application/ocsp-request"}
    )
    assert response.status_code == 200
    return response.content


def cached_statuses(env: Ocsp) -> dict[int, str]:
    with env.pki.store.transaction(readonly=True) as tx:
        found = {}
        for pem in ("good.pem", "bad.pem"):
            serial = x509.load_pem_x509_certificate((env.work / pem).read_bytes()).serial_number
            answer = tx.ocsp.answer("services", serial, "sha1")
            if answer is not None:
                found[serial] = answer.status
        return found


async def test_the_responder_certificate_is_delegated_and_lints_clean(ocsp_env: Ocsp) -> None:
    response = await post(ocsp_env, request_for(ocsp_env, "-cert", "good.pem"))
    check(ocsp_env, response, "-cert", "good.pem")
    signer = ocsp.load_der_ocsp_response(response).certificates[0]
    (ocsp_env.work / "responder.pem").write_bytes(signer.public_bytes(Encoding.PEM))
    text = openssl("x509", "-in", "responder.pem", "-noout", "-text", cwd=ocsp_env.work).stdout
    assert "OCSP Signing" in text and "OCSP No Check" in text
    assert "X509v3 Basic Constraints: critical\n                CA:FALSE" in text
    assert "X509v3 Key Usage: critical\n                Digital Signature\n" in text
    assert "Public-Key: (256 bit)" in text  # P-256 by default, whatever the CA's key
    verified = openssl(
        "verify", "-CAfile", "root.pem", "-untrusted", "inter.pem", "-purpose", "ocsphelper",
        "responder.pem", cwd=ocsp_env.work,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stdout + verified.stderr
    lifetime = signer.not_valid_after_utc - signer.not_valid_before_utc
    assert lifetime == dt.timedelta(days=7) + ocsp_env.pki.ctx.config.backdate
    findings = [f for f in lint_certificate(signer) if f[0] in ("ERROR", "FATAL")]
    assert findings == []
    # recorded like every certificate the CA signs
    with ocsp_env.pki.store.transaction(readonly=True) as tx:
        record = tx.certificates.get(signer.serial_number)
    assert record is not None and record.profile == "ocsp-responder"


@pytest.mark.parametrize("presign", [True, False], ids=["presigned", "dropped-only"])
async def test_a_revocation_is_answered_at_once_from_the_cache(
    ocsp_env: Ocsp, presign: bool
) -> None:
    """The first answer is cached `good`; the revocation drops it in its transaction and
    signs the revoked one after commit (or, if that fails, the next request signs it); the
    next request is answered revoked."""
    if not presign:
        ocsp_env.pki.revocation.ocsp = None
    der = request_for(ocsp_env, "-cert", "good.pem")
    assert (
        "good.pem: good" in check(ocsp_env, await post(ocsp_env, der), "-cert", "good.pem").stdout
    )
    serial = x509.load_pem_x509_certificate((ocsp_env.work / "good.pem").read_bytes()).serial_number
    assert cached_statuses(ocsp_env)[serial] == "good"
    again = await post(ocsp_env, der)
    assert again == await post(ocsp_env, der)  # the cached bytes, not a new signature
    ocsp_env.pki.revocation.revoke(serial, parse_reason("superseded"))
    assert cached_statuses(ocsp_env).get(serial) == ("revoked" if presign else None)
    shown = check(ocsp_env, await post(ocsp_env, der), "-cert", "good.pem").stdout
    assert "good.pem: revoked" in shown and "Reason: superseded" in shown


async def test_get_carries_rfc5019_caching_headers(ocsp_env: Ocsp) -> None:
    der = request_for(ocsp_env, "-cert", "good.pem")
    path = "/api/v1/ocsp/" + base64.b64encode(der).decode()
    response = await ocsp_env.client.get(path)
    assert response.status_code == 200
    shown = check(ocsp_env, response.content, "-cert", "good.pem").stdout
    this_update = _shown_time(shown, "This Update")
    next_update = _shown_time(shown, "Next Update")
    headers = response.headers
    assert parsedate_to_datetime(headers["last-modified"]) == this_update
    assert parsedate_to_datetime(headers["expires"]) == next_update
    cache_control = dict(
        part.strip().partition("=")[::2] for part in headers["cache-control"].split(",")
    )
    assert {"public", "no-transform"} <= cache_control.keys()
    assert 0 < int(cache_control["max-age"]) <= (next_update - this_update).total_seconds()
    etag = headers["etag"]
    unchanged = await ocsp_env.client.get(path, headers={"if-none-match": etag})
    assert unchanged.status_code == 304 and unchanged.content == b""
    assert unchanged.headers["etag"] == etag
    other = await ocsp_env.client.get(path, headers={"if-none-match": '"elsewhere"'})
    assert other.status_code == 200 and other.content == response.content
    # an unknown serial's answer and an error are not for caches
    unknown = request_for(ocsp_env, "-serial", "0x1234")
    answered = await ocsp_env.client.get("/api/v1/ocsp/" + base64.b64encode(unknown).decode())
    assert "0x1234: unknown" in check(ocsp_env, answered.content, "-serial", "0x1234").stdout
    assert answered.headers["cache-control"] == "no-store" and "etag" not in answered.headers


async def test_unknown_serials_can_get_the_unsigned_unauthorized(ocsp_env: Ocsp) -> None:
    config = ocsp_env.pki.ctx.config
    ocsp_env.pki.ctx.config = replace(config, ocsp=replace(config.ocsp, unknown_unauthorized=True))
    answer = await post(ocsp_env, request_for(ocsp_env, "-serial", "0x1234"))
    assert responder_status(ocsp_env, answer) == "unauthorized"
    good = await post(ocsp_env, request_for(ocsp_env, "-cert", "good.pem"))
    assert "good.pem: good" in check(ocsp_env, good, "-cert", "good.pem").stdout


def _shown_time(text: str, label: str) -> dt.datetime:
    line = next(line for line in text.splitlines() if line.strip().startswith(label))
    value = line.split(":", 1)[1].strip()
    return dt.datetime.strptime(value, "%b %d %H:%M:%S %Y GMT").replace(tzinfo=dt.UTC)
