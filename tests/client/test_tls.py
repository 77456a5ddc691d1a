"""`file_client_context`: a client context from loose files, checked by real TLS handshakes
against a server that requires a client certificate."""

from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path

import pytest
from cryptography import x509

from pkiforge.client import Identity, file_client_context, server_ssl_context
from tests.agent.pairs import make_pair
from tests.client.fakeca import FakeCA, pem
from tests.conftest import data_file


@pytest.fixture(scope="module")
def ca() -> FakeCA:
    return FakeCA()


@pytest.fixture
def files(ca: FakeCA, tmp_path: Path) -> dict[str, Path]:
    root = tmp_path / "root.pem"
    root.write_text(pem(ca.root))
    server_cert, server_key, _ = make_pair(ca, "key-p256.pem", tmp_path / "server")
    client_cert, client_key, _ = make_pair(ca, "key-p384.pem", tmp_path / "client")
    return {"root": root, "server_cert": server_cert, "server_key": server_key,
            "client_cert": client_cert, "client_key": client_key}  # fmt: skip


def handshake(files: dict[str, Path], client: ssl.SSLContext) -> x509.Certificate:
    """One handshake with an mTLS server context; the client certificate the server verified."""
    server = server_ssl_context(Identity(files["server_cert"], files["server_key"], files["root"]))
    ours, theirs = socket.socketpair()
    seen: list[bytes | None] = []
    failures: list[BaseException] = []

    def serve() -> None:
        try:
            with server.wrap_socket(theirs, server_side=True) as tls:
                seen.append(tls.getpeercert(binary_form=True))
        except (ssl.SSLError, OSError) as exc:
            failures.append(exc)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with client.wrap_socket(ours, server_hostname="localhost"):
            pass
    finally:
        thread.join(10)
    if failures:
        raise failures[0]
    assert seen[0] is not None
    return x509.load_der_x509_certificate(seen[0])


def leaf(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificates(path.read_bytes())[0]


def test_presents_the_certificate_and_trusts_the_ca(files: dict[str, Path]) -> None:
    context = file_client_context(
        ca=files["root"], cert=files["client_cert"], key=files["client_key"]
    )
    assert handshake(files, context) == leaf(files["client_cert"])


def test_the_key_may_be_inside_the_certificate_file(files: dict[str, Path], tmp_path: Path) -> None:
    both = tmp_path / "both.pem"
    both.write_bytes(files["client_key"].read_bytes() + files["client_cert"].read_bytes())
    context = file_client_context(ca=files["root"], cert=both)
    assert handshake(files, context) == leaf(files["client_cert"])


def test_without_a_certificate_the_server_refuses(files: dict[str, Path]) -> None:
    with pytest.raises((ssl.SSLError, OSError)):
        handshake(files, file_client_context(ca=files["root"]))


def test_the_system_roots_do_not_trust_a_private_ca(files: dict[str, Path]) -> None:
    context = file_client_context(cert=files["client_cert"], key=files["client_key"])
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(files, context)


def test_a_key_without_its_certificate_is_refused(files: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match="without its certificate"):
        file_client_context(ca=files["root"], key=files["client_key"])


def test_a_key_that_does_not_fit_is_refused(files: dict[str, Path], tmp_path: Path) -> None:
    other = tmp_path / "other.key"
    other.write_bytes(data_file("key-p256-b.pem"))
    with pytest.raises(ssl.SSLError, match="KEY_VALUES_MISMATCH"):
        file_client_context(ca=files["root"], cert=files["client_cert"], key=other)
