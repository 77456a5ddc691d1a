"""Client certificates refused in the TLS handshake get the TLS alert that says why, from a
real `pkiforge serve` (one worker and two), seen by clients that share none of our code:
`openssl s_client` and Python's ssl module.

OpenSSL picks the alert: unknown_ca for a certificate from a CA the server does not trust,
certificate_expired for an expired one, bad_certificate for one not yet valid. Refusals after
the handshake (revoked, unknown service) stay 401 problem+json: tests/api/test_https.py.
"""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding, load_pem_private_key
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pkiforge.signers.file import decrypt_key
from tests.api.conftest import HTTPS_WHITELIST
from tests.api.server import PASSPHRASE, Home, Server, make_home, start_server
from tests.conftest import data_file

pytestmark = pytest.mark.slow  # two servers started

NOW = dt.datetime.now(dt.UTC)
HOUR = dt.timedelta(hours=1)
# case: (what openssl s_client prints, the reason Python's ssl module reports)
ALERTS = {
    "foreign CA": ("alert unknown ca", "TLSV1_ALERT_UNKNOWN_CA"),
    "expired": ("alert certificate expired", "SSLV3_ALERT_CERTIFICATE_EXPIRED"),
    "not yet valid": ("alert bad certificate", "SSLV3_ALERT_BAD_CERTIFICATE"),
}
VERSIONS = {"TLS 1.2": ssl.TLSVersion.TLSv1_2, "TLS 1.3": ssl.TLSVersion.TLSv1_3}


def _key(name: str) -> CertificateIssuerPrivateKeyTypes:
    return load_pem_private_key(data_file(f"key-{name}.pem"), None)  # type: ignore[return-value]


def _cert(
    subject: str,
    key: CertificateIssuerPrivateKeyTypes,
    issuer: x509.Certificate | None,
    issuer_key: CertificateIssuerPrivateKeyTypes,
    validity: tuple[dt.datetime, dt.datetime] = (NOW - HOUR, NOW + HOUR),
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer else name)
        .public_key(key.public_key())  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(validity[0])
        .not_valid_after(validity[1])
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if issuer is not None:
        eku = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH])
        builder = builder.add_extension(eku, critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _root(home: Home) -> tuple[x509.Certificate, CertificateIssuerPrivateKeyTypes]:
    """The server's own root CA and its key, decrypted from the home's key files."""
    root = x509.load_pem_x509_certificate(home.root.read_bytes())
    for path in sorted((home.path / "ca").glob("*/key.pem")):
        key = decrypt_key(path.read_bytes(), PASSPHRASE.encode())
        if key.public_key() == root.public_key():
            return root, key
    raise AssertionError("the root's key is not in the home")


def _client_certs(home: Home, folder: Path) -> dict[str, tuple[str, str]]:
    """(certificate path, key path) per case: the leaf key is a committed P-384 key."""
    root, root_key = _root(home)
    stranger_key = _key("p521")
    stranger = _cert("stranger CA", stranger_key, None, stranger_key)
    leaf_key = _key("p384")
    leaves = {
        "foreign CA": _cert("billing", leaf_key, stranger, stranger_key),
        "expired": _cert("billing", leaf_key, root, root_key, (NOW - 3 * HOUR, NOW - 2 * HOUR)),
        "not yet valid": _cert("billing", leaf_key, root, root_key, (NOW + HOUR, NOW + 2 * HOUR)),
    }
    (folder / "leaf.key").write_bytes(data_file("key-p384.pem"))
    out = {}
    for case, leaf in leaves.items():
        path = folder / f"{case.replace(' ', '-')}.pem"
        path.write_bytes(leaf.public_bytes(Encoding.PEM))
        out[case] = (str(path), str(folder / "leaf.key"))
    return out


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    return make_home(tmp_path_factory.mktemp("alerts") / "home", HTTPS_WHITELIST)


@pytest.fixture(scope="module")
def certs(home: Home) -> dict[str, tuple[str, str]]:
    return _client_certs(home, home.path)


@pytest.fixture(scope="module", params=[1, 2], ids=["one worker", "two workers"])
def server(home: Home, request: pytest.FixtureRequest) -> Iterator[Server]:
    args = ("--workers", str(request.param)) if request.param > 1 else ()
    served = start_server(home, f"workers-{request.param}", args=args)
    yield served
    served.stop()


@pytest.mark.parametrize("version", VERSIONS.keys())
@pytest.mark.parametrize("case", ALERTS.keys())
def test_openssl_s_client_is_told_why(
    server: Server, certs: dict[str, tuple[str, str]], case: str, version: str
) -> None:
    cert, key = certs[case]
    flag = {"TLS 1.2": "-tls1_2", "TLS 1.3": "-tls1_3"}[version]
    # -ign_eof: after its side of the handshake s_client keeps reading until the server's
    # answer (TLS 1.3 refuses the client's certificate after the client has finished)
    run = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{server.port}", flag, "-ign_eof",
         "-CAfile", str(server.home.root), "-cert", cert, "-key", key],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    output = run.stdout + run.stderr
    assert ALERTS[case][0] in output, output


@pytest.mark.parametrize("version", VERSIONS.keys())
@pytest.mark.parametrize("case", ALERTS.keys())
def test_python_ssl_gets_the_alert_not_a_reset(
    server: Server, certs: dict[str, tuple[str, str]], case: str, version: str
) -> None:
    ctx = server.tls(certs[case])
    ctx.minimum_version = ctx.maximum_version = VERSIONS[version]
    with (
        socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw,
        pytest.raises(ssl.SSLError) as refused,
        ctx.wrap_socket(raw, server_hostname="127.0.0.1") as conn,  # TLS 1.2 fails here
    ):
        conn.recv(1024)  # TLS 1.3: the server's verdict on the client's certificate
    assert refused.value.reason == ALERTS[case][1], refused.value


def test_the_server_still_serves_afterwards(server: Server) -> None:
    cert = server.home.client_cert("billing", "billing.internal")
    with server.client(cert) as c:
        assert c.get("/api/v1/whoami").json()["service_id"] == "billing"
