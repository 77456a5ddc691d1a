"""An intermediate rotates under a live mTLS service: zero failed handshakes.

The peer pins the issuing CAs: it trusts the intermediates of its agent-managed CA bundle and
not the root (as Go and Java peers do with an intermediate in their trust store; OpenSSL with
X509_V_FLAG_PARTIAL_CHAIN). So the rotation changes what it must trust: it fails the first time
the service presents a certificate from the successor unless its bundle already holds it. The
service runs `pkiforge agent` (SIGHUP on a renewal or a new bundle); the peer keeps its
identity with `PkiClient.enable_auto_renewal`. The rotation happens while handshakes run, and
the test goes on until both sides present certificates from the successor.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from pkiforge.client import Identity, PkiClient, RenewalOptions
from pkiforge.client.tls import CIPHERS, swap_certificate
from tests.agent.conftest import ROOT, PkiServer, agent_command, cli, env, free_port, wait_for

pytestmark = pytest.mark.slow
SERVICE = Path(__file__).with_name("service_app.py")


def subjects_and_keys(path: Path) -> list[tuple[str, bytes]]:
    """What a bundle trusts, told apart by key: a successor shares its predecessor's name."""

    return [
        (
            c.subject.rfc4514_string(),
            c.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo),
        )
        for c in x509.load_pem_x509_certificates(path.read_bytes())
    ]


def issuer_key_id(cert: x509.Certificate) -> bytes:
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier is not None
    return aki.key_identifier


def ski(cert: x509.Certificate) -> bytes:
    return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest


@dataclass
class Peer:
    """Opens one mTLS connection after another, trusting only the intermediates of its
    agent-managed CA bundle; notes the issuer of each certificate the service presented."""

    port: int
    identity: Identity
    stop: threading.Event = field(default_factory=threading.Event)
    seen: list[bytes] = field(default_factory=list)  # the issuer key id of each served leaf
    failures: list[str] = field(default_factory=list)

    def context(self) -> ssl.SSLContext:
        pinned = [
            c.public_bytes(Encoding.PEM).decode()
            for c in x509.load_pem_x509_certificates(self.identity.ca.read_bytes())
            if c.issuer != c.subject  # the intermediates, not the root
        ]
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers(CIPHERS)
        ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
        ctx.load_verify_locations(cadata="".join(pinned))
        swap_certificate(ctx, self.identity)
        return ctx

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                ctx = self.context()
                raw = socket.create_connection(("127.0.0.1", self.port), timeout=5)
                with raw, ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                    tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
                    assert tls.recv(64).startswith(b"HTTP/1.0 200")
                    der = tls.getpeercert(binary_form=True)
                    assert der is not None
                self.seen.append(issuer_key_id(x509.load_der_x509_certificate(der)))
            except (OSError, AssertionError) as exc:
                self.failures.append(repr(exc))


def test_an_intermediate_rotates_under_a_live_mtls_service(
    pki_server: PkiServer, tmp_path: Path
) -> None:
    web = pki_server.enroll("svc-web", tmp_path / "web")
    peer_id = pki_server.enroll("svc-peer", tmp_path / "peer")
    before = subjects_and_keys(web.ca)
    assert len(before) == 2  # enrolment installed the bundle: services and root
    old_issuer = ski(x509.load_pem_x509_certificates(web.ca.read_bytes())[0])
    port, pid_file, reload_log = free_port(), tmp_path / "web.pid", tmp_path / "reloads"
    service = subprocess.Popen(
        [sys.executable, str(SERVICE), str(web.cert), str(web.key), str(web.ca),
         str(port), str(pid_file), str(reload_log)],
        cwd=ROOT, env=env(),
    )  # fmt: skip
    agent = peer_renewal = None
    load = Peer(port, peer_id)
    worker = threading.Thread(target=load.run)
    peer_renewed: list[str] = []
    try:
        wait_for(pid_file.exists, 20, "the service")
        # 1-minute certificates renewed 30 s before expiry: the first renewal comes well after
        # the rotation has reached both bundles (within a second of it)
        agent = subprocess.Popen(
            agent_command(pki_server, web, "--renew-before", "30s", "--bundle-interval", "1s",
                          "--signal", "HUP", "--pid-file", str(pid_file)),
            cwd=ROOT, env=env(), stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        client = PkiClient(pki_server.url, identity=peer_id)
        peer_renewal = client.enable_auto_renewal(
            "30s",
            on_renew=lambda c: peer_renewed.append(c.issuer),
            options=RenewalOptions(jitter=0, check_interval=0.5, bundle_interval=1.0),
        )
        worker.start()
        wait_for(lambda: len(load.seen) >= 20, 20, "handshakes before the rotation")
        cli(pki_server.home, "ca", "rotate", "services")
        for identity in (web, peer_id):
            wait_for(lambda i=identity: len(subjects_and_keys(i.ca)) == 3, 20, "the new bundle")
        served_before = len(load.seen)
        # renewals follow: each side now presents a certificate of the successor
        wait_for(lambda: bool(peer_renewed), 60, "the peer's renewal")
        wait_for(lambda: any(k != old_issuer for k in load.seen), 60, "the service's renewal")
        seen_new = len(load.seen)
        wait_for(lambda: len(load.seen) >= seen_new + 20, 20, "handshakes after the renewals")
    finally:
        load.stop.set()
        if worker.is_alive():
            worker.join(timeout=10)
        if peer_renewal is not None:
            peer_renewal.stop()
        for proc in (agent, service):
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=20)
    assert load.failures == []
    assert peer_renewed[0] == "services.2"
    assert served_before >= 20 and old_issuer in load.seen
    new_issuers = {k for k in load.seen if k != old_issuer}
    assert len(new_issuers) == 1  # the successor
    # the service reloaded for the new bundle (before its renewal) and again for the renewal
    assert len(reload_log.read_text().split()) >= 2
