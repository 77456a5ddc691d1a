"""The benches import, parse their arguments, and build the bytes they send correctly.

No timing here: the benches measure speed; these tests only keep them runnable.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import subprocess
from pathlib import Path
from urllib.parse import unquote

import pytest
from bench import issuance, ocsp, openbao, replicas, revocation
from bench.loadgen import _exchange
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

DATA = Path(__file__).parent / "data"


def test_issuance_arguments_name_the_three_servers() -> None:
    args = issuance.parse_args([])
    assert issuance._servers(args) == ["cfssl", "openbao", "pkiforge"]
    args = issuance.parse_args(["--skip", "cfssl", "--key-type", "p256", "--rounds", "5"])
    assert issuance._servers(args) == ["openbao", "pkiforge"]
    assert (args.key_type, args.rounds) == ("p256", 5)
    assert issuance._servers(issuance.parse_args(["--only", "openbao"])) == ["openbao"]
    with pytest.raises(SystemExit):
        issuance.parse_args(["--only", "vault"])


def test_replicas_arguments_and_haproxy_config() -> None:
    args = replicas.parse_args([])
    assert (args.rounds, args.duration, args.key_type) == (5, 10.0, "p256")
    for n in (1, 2, 3):
        servers = [line.split()[1] for line in replicas.config_for(n).splitlines()
                   if line.strip().startswith("server ")]  # fmt: skip
        assert servers == [f"replica{i}" for i in range(1, n + 1)]
        assert "send-proxy-v2" in replicas.config_for(n)


def test_ocsp_arguments_and_their_bounds() -> None:
    args = ocsp.parse_args([])
    assert (args.serials, args.bao_serials, args.concurrency) == (100_000, 10_000, 16)
    args = ocsp.parse_args(["--only", "pkiforge", "--serials", "500", "--revoked", "0.5"])
    assert (args.only, args.serials, args.revoked) == ("pkiforge", 500, 0.5)
    assert not args.plain and not args.prime
    assert ocsp.parse_args(["--plain", "--prime"]).plain
    for bad in (["--revoked", "1"], ["--serials", "3"], ["--only", "cfssl"], ["--unknown", "0"]):
        with pytest.raises(SystemExit):
            ocsp.parse_args(bad)


def test_revocation_arguments() -> None:
    args = revocation.parse_args([])
    assert (args.sizes, args.openbao_sizes) == ([1000, 10000, 100000], [1000, 10000])
    assert revocation.parse_args(["--openbao-sizes", "0"]).openbao_sizes == []
    with pytest.raises(SystemExit):
        revocation.parse_args(["--sizes", "10000,1000"])


def test_openbao_arguments_and_serial_spelling() -> None:
    assert openbao.parse_args(["--check"]).check
    # OpenBao names a certificate by its serial's minimal bytes: no leading 00
    assert openbao.colon_serial(0x9F1534) == "9f:15:34"
    assert openbao.colon_serial(0x0A0B) == "0a:0b"


def _leaf_and_issuer() -> tuple[x509.Certificate, x509.Certificate]:
    """A CA certificate and one it signed, from the committed test keys."""
    ca_key = serialization.load_pem_private_key((DATA / "key-p256.pem").read_bytes(), None)
    leaf_key = serialization.load_pem_private_key((DATA / "key-p256-b.pem").read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    assert isinstance(leaf_key, ec.EllipticCurvePrivateKey)
    now = dt.datetime.now(dt.UTC)

    def cert(subject: str, key: ec.EllipticCurvePrivateKey, serial: int) -> x509.Certificate:
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench CA")]))
            .public_key(key.public_key())
            .serial_number(serial)
            .not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=1))
            .sign(ca_key, hashes.SHA256())
        )

    return cert("leaf", leaf_key, 2), cert("bench CA", ca_key, 1)


def _openssl_request_text(der: bytes, tmp_path: Path) -> str:
    path = tmp_path / "req.der"
    path.write_bytes(der)
    out = subprocess.run(
        ["openssl", "ocsp", "-reqin", str(path), "-req_text", "-noverify"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout


def test_ocsp_requests_are_what_openssl_reads(tmp_path: Path) -> None:
    leaf, issuer = _leaf_and_issuer()
    ids = ocsp.Issuer.of(leaf, issuer)
    der = ids.request(0x4ABCDEF0123)
    text = _openssl_request_text(der, tmp_path)
    assert "Serial Number: 04ABCDEF0123" in text
    assert ids.name_hash.hex().upper() in text and ids.key_hash.hex().upper() in text
    # GET: the base64 is URL-encoded in the path and decodes back to the same DER
    raw = ocsp.http_request("https://h:1/api/v1/ocsp", "GET", der, "h:1")
    line = raw.split(b"\r\n", 1)[0].decode()
    method, path, _ = line.split(" ")
    assert method == "GET" and path.startswith("/api/v1/ocsp/")
    assert base64.b64decode(unquote(path.removeprefix("/api/v1/ocsp/"))) == der
    post = ocsp.http_request("https://h:1/v1/pki/ocsp", "POST", der, "h:1")
    assert post.startswith(b"POST /v1/pki/ocsp HTTP/1.1\r\n") and post.endswith(b"\r\n\r\n" + der)
    assert f"Content-Length: {len(der)}".encode() in post


def test_answered_accepts_answers_only() -> None:
    from cryptography.x509 import ocsp as x509_ocsp

    def unsuccessful(status: x509_ocsp.OCSPResponseStatus) -> bytes:
        built = x509_ocsp.OCSPResponseBuilder.build_unsuccessful(status)
        return built.public_bytes(serialization.Encoding.DER)

    assert not ocsp.answered(200, unsuccessful(x509_ocsp.OCSPResponseStatus.MALFORMED_REQUEST))
    assert not ocsp.answered(200, unsuccessful(x509_ocsp.OCSPResponseStatus.TRY_LATER))
    # RFC 5019's unsigned answer for a serial the responder never issued
    assert ocsp.answered(200, unsuccessful(x509_ocsp.OCSPResponseStatus.UNAUTHORIZED))
    assert not ocsp.answered(200, b"<html>")
    assert not ocsp.answered(500, b"")


def _exchange_bytes(answer: bytes) -> tuple[int, bytes]:
    async def go() -> tuple[int, bytes]:
        reader = asyncio.StreamReader()
        reader.feed_data(answer)
        reader.feed_eof()

        class Sink:
            def write(self, _data: bytes) -> None:
                pass

        return await _exchange(reader, Sink(), b"GET / HTTP/1.1\r\n\r\n")  # type: ignore[arg-type]

    return asyncio.run(go())


def test_loadgen_reads_sized_and_chunked_bodies() -> None:
    sized = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
    assert _exchange_bytes(sized) == (200, b"hello")
    # as Go's net/http sends an answer it did not size (OpenBao's signed certificates)
    chunked = (
        b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4\r\nWiki\r\n6;ext=1\r\npedia \r\n0\r\n\r\n"
    )
    assert _exchange_bytes(chunked) == (201, b"Wikipedia ")
