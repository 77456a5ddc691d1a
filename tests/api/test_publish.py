"""`pkiforge publish serve`: CRLs, CA certificates and OCSP over plain HTTP, from the database,
with the CA key files gone; the URLs certificates carry (from `publish.base_url`) lead there.
openssl and curl are the clients."""

from __future__ import annotations

import base64
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from .server import Home, env, free_port, make_home


@dataclass
class Published:
    home: Home
    url: str
    chain: Path
    revoked_serial: str


def openssl(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)


def x509_field(home: Home, cert: str, flag: str) -> str:
    shown = openssl("x509", "-in", cert, "-noout", flag, cwd=home.path)
    assert shown.returncode == 0, shown.stderr
    return shown.stdout.strip()


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Published]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    home = make_home(
        tmp_path_factory.mktemp("publish") / "home", {}, {"publish": {"base_url": url}}
    )
    chain = home.path / "chain.pem"
    chain.write_text(home.cli("ca", "chain", "services").stdout)
    home.client_cert("billing", "billing.internal")
    home.client_cert("orders", "orders.internal")
    serial = x509_field(home, "orders.pem", "-serial").split("=")[1].lower()
    home.cli("cert", "revoke", serial, "--reason", "keyCompromise")  # signs the OCSP answer
    home.cli("crl", "generate", "--issuer", "services")
    home.cli("crl", "generate", "--issuer", "root")
    # no CA key file from here on: the listener serves what the database holds
    for key in (home.path / "ca").glob("*/key.pem"):
        key.rename(key.with_name("moved-away.pem"))
    log = home.path / "publish.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pkiforge.cli", "--home", str(home.path),
             "publish", "serve", "--port", str(port)],
            env=env(), stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        yield Published(home, url, chain, serial)
    finally:
        proc.terminate()
        proc.wait(15)


def ocsp(p: Published, *target: str) -> subprocess.CompletedProcess[str]:
    """openssl ocsp against the URL in billing.pem's AIA, plain HTTP, nonce included."""
    aia = x509_field(p.home, "billing.pem", "-ocsp_uri")
    assert aia == f"{p.url}/api/v1/ocsp"
    return openssl(
        "ocsp", "-url", aia, "-issuer", str(p.chain), *target, "-CAfile", str(p.home.root),
        cwd=p.home.path,
    )  # fmt: skip


def test_openssl_ocsp_good_revoked_unknown(published: Published) -> None:
    good = ocsp(published, "-cert", "billing.pem")
    assert "billing.pem: good" in good.stdout and "Response verify OK" in good.stderr, good
    revoked = ocsp(published, "-cert", "orders.pem")
    assert "orders.pem: revoked" in revoked.stdout, revoked
    assert "Reason: keyCompromise" in revoked.stdout
    unknown = ocsp(published, "-serial", "0x1234")
    assert "0x1234: unknown" in unknown.stdout and "Response verify OK" in unknown.stderr


def test_ocsp_get_with_curl_carries_caching_headers(published: Published) -> None:
    home = published.home.path
    made = openssl(
        "ocsp", "-issuer", str(published.chain), "-cert", "billing.pem", "-no_nonce",
        "-reqout", "req.der", cwd=home,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    path = quote(base64.b64encode((home / "req.der").read_bytes()).decode(), safe="")
    out = subprocess.run(
        ["curl", "-sS", "-D", "-", "-o", str(home / "resp.der"),
         f"{published.url}/api/v1/ocsp/{path}"],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout.lower()  # fmt: skip
    assert "cache-control: max-age=" in out and "etag:" in out and "last-modified:" in out
    checked = openssl(
        "ocsp", "-respin", "resp.der", "-issuer", str(published.chain), "-cert", "billing.pem",
        "-CAfile", str(published.home.root), "-no_nonce", cwd=home,
    )  # fmt: skip
    assert "billing.pem: good" in checked.stdout, checked.stderr


def test_crls_and_ca_certificates_at_the_urls_certificates_carry(published: Published) -> None:
    home = published.home.path
    text = x509_field(published.home, "billing.pem", "-text")
    crl_url = f"{published.url}/api/v1/crl/services"
    ca_url = f"{published.url}/api/v1/ca/services?format=der"
    assert f"URI:{crl_url}" in text and f"CA Issuers - URI:{ca_url}" in text
    subprocess.run(
        ["curl", "-sSf", "-o", str(home / "services.crl"), crl_url], check=True, timeout=30
    )
    crl = openssl(
        "crl", "-inform", "DER", "-in", "services.crl", "-CAfile", str(published.chain),
        "-noout", "-text", cwd=home,
    )  # fmt: skip
    assert "verify OK" in crl.stderr + crl.stdout, crl.stderr
    assert published.revoked_serial.upper() in crl.stdout.upper().replace(":", "")
    subprocess.run(["curl", "-sSf", "-o", str(home / "ca.der"), ca_url], check=True, timeout=30)
    fetched = openssl("x509", "-inform", "DER", "-in", "ca.der", "-noout", "-subject", cwd=home)
    assert (
        fetched.stdout
        == openssl("x509", "-in", str(published.chain), "-noout", "-subject", cwd=home).stdout
    )
    # openssl takes the untrusted certificate in PEM only: convert, then verify the leaf
    openssl("x509", "-inform", "DER", "-in", "ca.der", "-out", "ca.pem", cwd=home)
    verified = openssl(
        "verify", "-CAfile", str(published.home.root), "-untrusted", "ca.pem", "billing.pem",
        cwd=home,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stdout + verified.stderr
    missing = httpx.get(f"{published.url}/api/v1/crl/nobody")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
