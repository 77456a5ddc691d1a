"""The server's own TLS certificate: issued again when the CA that issued it is revoked."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509

from pkiforge.ca.models import CAStatus
from pkiforge.clock import FixedClock
from pkiforge.server.certificate import ensure_server_certificate
from pkiforge.wiring import build_pki
from tests.ca.helpers import NOW, PASSPHRASE, make_pki, make_settings


def served(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificates(path.read_bytes())[0]


def test_a_server_certificate_under_a_revoked_ca_is_replaced(tmp_path: Path) -> None:
    home = tmp_path / "home"
    pki = make_pki(home)
    try:
        pki.hierarchy.create_intermediate("agents")
        files = ensure_server_certificate(pki, pki.settings)
        first = served(files.cert)
        services = pki.hierarchy.get("services").certificate
        assert services is not None and first.issuer == services.subject
        assert served(ensure_server_certificate(pki, pki.settings).cert) == first  # not due

        pki.ca_revocation.revoke("services", x509.ReasonFlags.ca_compromise)
    finally:
        pki.close()
    # the operator names another default issuer, as the revocation asked
    settings = make_settings(home, default_issuer="agents")
    moved = build_pki(settings, PASSPHRASE, FixedClock(NOW))
    try:
        assert moved.hierarchy.get("services").status is CAStatus.REVOKED
        second = served(ensure_server_certificate(moved, settings).cert)
        agents = moved.hierarchy.get("agents").certificate
        assert agents is not None
        assert second.issuer == agents.subject and second.serial_number != first.serial_number
        second.verify_directly_issued_by(agents)
    finally:
        moved.close()
