"""TLS for the API: a strict server context, and the ASGI TLS extension uvicorn lacks.

uvicorn verifies client certificates but does not hand them to the application. The two
protocol classes below (one per uvicorn HTTP implementation) read the peer certificate from the
connection's SSL object when the connection is made and add `scope["extensions"]["tls"]`
(the ASGI TLS extension: `client_cert_chain` as PEM strings, `tls_version`, `cipher_suite`) to
every request on that connection.

The protocol classes override uvicorn internals: pyproject.toml pins uvicorn to the minor
versions tests/server/test_uvicorn_contract.py checks.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from pkiforge.pairs import resolve_pair
from pkiforge.server.alerts import AlertingContext
from pkiforge.server.guard import GuardedH11Protocol, GuardedHttpToolsProtocol

log = logging.getLogger("pkiforge.server")
RELOAD_SECONDS = 5.0
# TLS 1.2 suites: forward secrecy and AEAD only; TLS 1.3 suites are always modern
CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL:!MD5:!DSS:!RC4:!3DES"


@dataclass(frozen=True)
class TLSFiles:
    """Where the server's certificate chain, key and trusted client CAs are."""

    cert: Path
    key: Path
    client_cas: Path


def _load_pair(ctx: ssl.SSLContext, files: TLSFiles) -> None:
    # both paths from one generation: a renewal committing in between cannot mix them
    cert, key = resolve_pair(files.cert, files.key)
    ctx.load_cert_chain(str(cert), str(key))


def server_context(files: TLSFiles) -> ssl.SSLContext:
    """TLS 1.2+, modern ciphers, client certificate optional but verified against our CAs; a
    refused handshake sends its alert (alerts.py)."""
    ctx = AlertingContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(CIPHERS)
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    ctx.verify_mode = ssl.CERT_OPTIONAL  # health, CA, CRL and enrollment need no certificate
    ctx.load_verify_locations(cafile=str(files.client_cas))
    _load_pair(ctx, files)
    ctx.set_alpn_protocols(["http/1.1"])
    _RELOADER.track(ctx, files)
    return ctx


class _Reloader:
    """Re-read the certificate into live contexts when the files change (self-renewal)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tracked: list[tuple[ssl.SSLContext, TLSFiles, float]] = []

    def track(self, ctx: ssl.SSLContext, files: TLSFiles) -> None:
        with self._lock:
            self._tracked.append((ctx, files, _mtime(files)))

    def reload_changed(self) -> int:
        """Load new files into each context whose files changed; new handshakes use them."""
        reloaded = 0
        with self._lock:
            for i, (ctx, files, seen) in enumerate(self._tracked):
                now = _mtime(files)
                if now != seen:
                    _load_pair(ctx, files)
                    ctx.load_verify_locations(cafile=str(files.client_cas))
                    self._tracked[i] = (ctx, files, now)
                    reloaded += 1
        return reloaded


def _mtime(files: TLSFiles) -> float:
    try:
        return max(
            os.stat(files.cert).st_mtime_ns,
            os.stat(files.key).st_mtime_ns,
            os.stat(files.client_cas).st_mtime_ns,
        )
    except FileNotFoundError:
        return 0.0


_RELOADER = _Reloader()


def reload_changed() -> int:
    """See `_Reloader.reload_changed`; called periodically in each serving process."""
    return _RELOADER.reload_changed()


async def reload_loop() -> None:
    """Pick up a renewed server certificate in this process without a restart."""
    while True:
        await asyncio.sleep(RELOAD_SECONDS)
        try:
            if reload_changed():
                log.info("server TLS certificate reloaded")
        except (OSError, ValueError) as exc:  # half-written files: try again next tick
            log.warning("TLS reload deferred: %s", exc)


def tls_extension(transport: asyncio.BaseTransport) -> dict[str, Any] | None:
    """The ASGI TLS extension for one connection, or None if it is not TLS."""
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    chain = []
    if der:
        chain.append(x509.load_der_x509_certificate(der).public_bytes(Encoding.PEM).decode())
    cipher = ssl_object.cipher()
    return {
        "server_cert": None,
        "client_cert_chain": chain,
        "client_cert_name": None,
        "client_cert_error": None,
        "tls_version": {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}.get(ssl_object.version() or ""),
        "cipher_suite": cipher[0] if cipher else None,
    }


class _WithTLS:
    """Wraps the app for one connection and adds its TLS extension to each scope."""

    def __init__(self, app: Any, tls: dict[str, Any]) -> None:
        self.app = app
        self.tls = tls

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            scope = dict(scope)
            scope["extensions"] = {**scope.get("extensions", {}), "tls": self.tls}
        await self.app(scope, receive, send)


class TLSH11Protocol(GuardedH11Protocol):
    """h11 with the HTTP layer's bounds (server/guard.py) and the ASGI TLS extension."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        tls = tls_extension(transport)
        if tls is not None:
            self.app = _WithTLS(self.app, tls)


class TLSHttpToolsProtocol(GuardedHttpToolsProtocol):
    """httptools with the HTTP layer's bounds (server/guard.py) and the ASGI TLS extension."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        tls = tls_extension(transport)
        if tls is not None:
            self.app = _WithTLS(self.app, tls)
