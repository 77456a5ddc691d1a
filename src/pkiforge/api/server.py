"""Serving: the server's own TLS certificate (issued by its CA, renewed in place) and uvicorn."""

from __future__ import annotations

import fcntl
import logging
import random
import socket
import ssl
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import Encoding

from pkiforge.api.tls import TLSFiles, TLSHttpToolsProtocol, server_context
from pkiforge.ca.lifecycle import IssueRequest, parse_names
from pkiforge.ca.models import SYSTEM, CAStatus
from pkiforge.errors import Conflict, InvalidInput
from pkiforge.pairs import Pair, install_pair, write_atomic
from pkiforge.pki import Pki
from pkiforge.renewal import Backoff, RenewalPolicy
from pkiforge.settings import MAX_PORT, MIN_PORT, Settings
from pkiforge.x509.keys import parse_key_type, private_key_pem

log = logging.getLogger("pkiforge.server")
SERVER_SERVICE_ID = "pkiforge"
BACKLOG = 2048
AppFactory = Callable[[], Any]  # builds the ASGI app (wiring.ServingApp)


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
    template = IssueRequest(
        common_name=names[0] if names[0] != "127.0.0.1" else names[-1],
        names=parse_names(names, allow_wildcard=profile.allow_wildcards),
        service_id=SERVER_SERVICE_ID,
        profile=profile.name,
    )
    record, key = pki.certificates.issue_with_new_key(
        template, parse_key_type(settings.server.tls_key_type), actor=SYSTEM
    )
    assert record.certificate is not None
    chain = pki.hierarchy.chain(record.issuer)[:-1]  # leaf + intermediates, not the root
    pem = b"".join(c.public_bytes(Encoding.PEM) for c in [record.certificate, *chain])
    # the same crash-safe install as the renewal agent: readers see the old pair or the new one
    install_pair(files.cert, files.key, Pair(cert_pem=pem, key_pem=private_key_pem(key)))
    log.info("server certificate %s issued, valid until %s", record.serial_hex, record.not_after)


def _ca_bundle(pki: Pki) -> bytes:
    return b"".join(
        ca.certificate.public_bytes(Encoding.PEM)
        for ca in pki.hierarchy.all()
        if ca.certificate is not None and ca.status is CAStatus.ACTIVE
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


def ssl_factory(files: TLSFiles, _config: Any, _default: Any) -> ssl.SSLContext:
    """uvicorn `ssl_context_factory`: module-level so worker processes can unpickle it."""
    return server_context(files)


def uvicorn_config(app: AppFactory, files: TLSFiles, host: str, port: int) -> Any:
    """The uvicorn configuration of one serving process: our TLS context and protocol; the
    app is built by `app` in the process that serves it."""
    import uvicorn

    return uvicorn.Config(
        app,
        factory=True,
        host=host,
        port=port,
        http=TLSHttpToolsProtocol,
        ssl_context_factory=partial(ssl_factory, files),
        timeout_graceful_shutdown=10,
        server_header=False,
        proxy_headers=False,  # the client address is the peer; proxies are handled explicitly
        log_level="info",
    )


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to the address and listening: one worker or many serve from it, so
    both fail the same way, here, before serving starts.

    Raises:
        InvalidInput: the port is outside 1-65535.
        Conflict: the address is taken or cannot be bound here.
    """
    if not MIN_PORT <= port <= MAX_PORT:  # bind() would refuse 65536+ only with OverflowError
        raise InvalidInput(f"port {port} is outside {MIN_PORT}-{MAX_PORT}", field="port")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        reason = exc.strerror or str(exc)
        raise Conflict(f"cannot listen on {host}:{port}: {reason}", field="port") from None
    return sock


def serve(app: AppFactory, files: TLSFiles, listener: socket.socket, *, workers: int) -> None:
    """Serve the app `app` builds on `listener`, in this process or in `workers` processes
    (blocks; closes it). With several, `app` must be picklable: each worker calls it."""
    import uvicorn

    host, port = listener.getsockname()[:2]
    if workers > 1:
        from pkiforge.api.workers import Supervisor

        Supervisor(app, files, host, port, workers).run(listener)
        return
    uvicorn.Server(uvicorn_config(app, files, host, port)).run(sockets=[listener])
