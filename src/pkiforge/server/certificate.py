"""The server's own TLS certificate: issued by its CA, renewed in place, with the bundle of
CAs whose client certificates it verifies."""

from __future__ import annotations

import fcntl
import logging
import random
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import Encoding

from pkiforge.ca.authorize import operator_rules
from pkiforge.ca.issue_request import IssueRequest, parse_names
from pkiforge.ca.models import SYSTEM, CAStatus
from pkiforge.pairs import Pair, install_pair, write_atomic
from pkiforge.pki import Pki
from pkiforge.renewal import Backoff, RenewalPolicy
from pkiforge.server.tls import TLSFiles
from pkiforge.settings import Settings
from pkiforge.x509.keys import parse_key_type, private_key_pem

log = logging.getLogger("pkiforge.server")
SERVER_SERVICE_ID = "pkiforge"


def tls_files(home: Path) -> TLSFiles:
    folder = home / "server"
    return TLSFiles(folder / "tls.pem", folder / "tls.key", folder / "client-cas.pem")


def renewal_due(cert: x509.Certificate, fraction: float, now: Any) -> bool:
    """True once `fraction` of the lifetime has passed (less jitter): the agent's own rule."""
    return RenewalPolicy(fraction=fraction).is_due(cert, now)


def ensure_server_certificate(pki: Pki, settings: Settings, *, force: bool = False) -> TLSFiles:
    """Issue (or renew) the server's certificate from its own CA; refresh the client CA bundle.

    Several workers or replicas may call this at once: a file lock lets one of them issue.
    """
    files = tls_files(settings.home)
    files.cert.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(files.cert.parent / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        bundle = _ca_bundle(pki)
        if not files.client_cas.exists() or files.client_cas.read_bytes() != bundle:
            write_atomic(files.client_cas, bundle)
        current = _load(files.cert)
        names = sorted(settings.server.hostnames)
        if (
            force
            or current is None
            or not files.key.exists()
            or renewal_due(current, settings.server.tls_renew_at, pki.ctx.clock.now())
            or _names(current) != set(names)
            or not _issued_by_active_ca(current, pki)  # e.g. its issuer was revoked
        ):
            _issue(pki, settings, files, names)
    return files


def _issue(pki: Pki, settings: Settings, files: TLSFiles, names: list[str]) -> None:
    profile = pki.ctx.config.profiles[settings.server.tls_profile]
    request = IssueRequest(
        common_name=names[0] if names[0] != "127.0.0.1" else names[-1],
        names=parse_names(names),
        service_id=SERVER_SERVICE_ID,
        profile=profile.name,
        key_type=parse_key_type(settings.server.tls_key_type),
    )
    issued = pki.certificates.issuance.issue(request, SYSTEM, operator_rules(request))
    record, key = issued.record, issued.key
    assert record.certificate is not None and key is not None
    chain = pki.hierarchy.chain(record.issuer)[:-1]  # leaf + intermediates, not the root
    pem = b"".join(c.public_bytes(Encoding.PEM) for c in [record.certificate, *chain])
    # the same crash-safe install as the renewal agent: readers see the old pair or the new one
    install_pair(files.cert, files.key, Pair(cert_pem=pem, key_pem=private_key_pem(key)))
    log.info("server certificate %s issued, valid until %s", record.serial_hex, record.not_after)


def _ca_bundle(pki: Pki) -> bytes:
    return b"".join(
        ca.certificate.public_bytes(Encoding.PEM)
        for ca in pki.hierarchy.all()
        if ca.certificate is not None and ca.in_service  # a rotated CA's clients stay valid
    )


def _issued_by_active_ca(cert: x509.Certificate, pki: Pki) -> bool:
    for ca in pki.hierarchy.all():
        if ca.certificate is None or ca.status is not CAStatus.ACTIVE:
            continue
        if ca.certificate.subject != cert.issuer:
            continue
        try:
            cert.verify_directly_issued_by(ca.certificate)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return True
    return False


def _load(path: Path) -> x509.Certificate | None:
    try:
        return x509.load_pem_x509_certificates(path.read_bytes())[0]
    except (FileNotFoundError, ValueError, IndexError):
        return None


def _names(cert: x509.Certificate) -> set[str]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(v) for v in san.get_values_for_type(x509.DNSName)} | {
        str(v) for v in san.get_values_for_type(x509.IPAddress)
    }


def start_renewal_thread(renew: Callable[[], object], interval: float) -> threading.Event:
    """Check for renewal every `interval` seconds until the returned event is set."""
    stop = threading.Event()

    def loop() -> None:
        failures, delay = 0, interval
        while not stop.wait(delay):
            try:
                renew()
                failures, delay = 0, interval
            except Exception:  # keep serving on the old certificate; retry with the agent's backoff
                delay = Backoff(cap=interval).delay(failures, random.random())  # noqa: S311
                failures += 1
                log.exception("server certificate renewal failed; retrying in %.0fs", delay)

    threading.Thread(target=loop, name="tls-renewal", daemon=True).start()
    return stop
