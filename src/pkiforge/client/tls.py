"""mTLS for services: contexts that trust only this CA and present the service's certificate.

`LiveServerContext` keeps a server's one `ssl.SSLContext` and lets a renewal swap the
certificate in it: `load_cert_chain` on the live context, plus an SNI callback that sends each
new handshake to a fully loaded context, so no handshake ever sees the moment between the new
certificate and its new key (OpenSSL sets them one after the other, with the GIL released).
"""

from __future__ import annotations

import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from pkiforge.pairs import Pair, read_pair, resolve_pair

__all__ = [
    "Identity",
    "LiveServerContext",
    "client_ssl_context",
    "file_client_context",
    "server_ssl_context",
    "swap_certificate",
    "trust_bundle",
]

# TLS 1.2 suites: forward secrecy and AEAD only (TLS 1.3 suites are always modern)
LOAD_ATTEMPTS = 3
CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL:!MD5:!DSS:!RC4:!3DES"


@dataclass(frozen=True)
class Identity:
    """A service's files: certificate chain (leaf first), private key, and the CA bundle."""

    cert: Path
    key: Path
    ca: Path

    @classmethod
    def in_dir(cls, folder: Path | str, name: str = "tls") -> Identity:
        """`<folder>/<name>.pem`, `<folder>/<name>.key` and `<folder>/ca.pem`."""
        base = Path(folder)
        return cls(base / f"{name}.pem", base / f"{name}.key", base / "ca.pem")

    def read(self) -> Pair:
        """The current certificate and key, read from one generation.

        Raises:
            FileNotFoundError: a file is missing.
        """
        return read_pair(self.cert, self.key)

    def certificate(self) -> x509.Certificate:
        """The current leaf certificate.

        Raises:
            FileNotFoundError: a file is missing.
        """
        return x509.load_pem_x509_certificates(self.read().cert_pem)[0]


def _base(purpose: ssl.Purpose, ca: Path | None) -> ssl.SSLContext:
    protocol = (
        ssl.PROTOCOL_TLS_SERVER if purpose is ssl.Purpose.CLIENT_AUTH else ssl.PROTOCOL_TLS_CLIENT
    )
    ctx = ssl.SSLContext(protocol)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(CIPHERS)
    ctx.options |= ssl.OP_NO_COMPRESSION
    if ca is None:
        ctx.load_default_certs(purpose)  # the operating system's roots
    else:
        ctx.load_verify_locations(cafile=str(ca))  # this CA only: no system roots
    return ctx


def client_ssl_context(
    identity: Identity | None = None, *, ca: Path | None = None
) -> ssl.SSLContext:
    """A client context that verifies servers against this CA and presents `identity` if given.

    Raises:
        ValueError: neither an identity nor a CA bundle was given.
        FileNotFoundError / ssl.SSLError: a file is missing or unusable.
    """
    bundle = ca or (identity.ca if identity else None)
    if bundle is None:
        raise ValueError("a CA bundle is needed to verify the server")
    ctx = _base(ssl.Purpose.SERVER_AUTH, bundle)
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    if identity is not None:
        swap_certificate(ctx, identity)
    return ctx


def file_client_context(
    *, ca: Path | None = None, cert: Path | None = None, key: Path | None = None
) -> ssl.SSLContext:
    """A client context from loose files, as `curl --cacert --cert --key` takes them.

    It trusts `ca` (the operating system's roots when None), checks the server's name, and
    presents `cert` (a chain, leaf first) with `key`, or with the key inside `cert` when `key`
    is None. Files an agent keeps fresh (`install_pair`) are read from one generation.

    Raises:
        ValueError: `key` without `cert`.
        FileNotFoundError / ssl.SSLError: a file is missing or unusable, or the key does not fit.
    """
    if key is not None and cert is None:
        raise ValueError("a private key without its certificate")
    ctx = _base(ssl.Purpose.SERVER_AUTH, ca)
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    if cert is not None:
        _load_pair(ctx, cert, key or cert)
    return ctx


def server_ssl_context(identity: Identity, *, require_client_cert: bool = True) -> ssl.SSLContext:
    """A server context presenting `identity`; client certificates are verified against this CA.

    Raises:
        FileNotFoundError / ssl.SSLError: a file is missing or unusable.
    """
    ctx = _base(ssl.Purpose.CLIENT_AUTH, identity.ca)
    ctx.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
    ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    swap_certificate(ctx, identity)
    return ctx


def swap_certificate(ctx: ssl.SSLContext, identity: Identity) -> int:
    """Load the current pair into a live context; connections made afterwards present it.

    Both files come from one generation, so the pair always matches; returns the serial. In a
    server that accepts in other threads prefer `LiveServerContext`, whose handshakes never see
    the change half done.

    Raises:
        FileNotFoundError / ssl.SSLError: a file is missing or the key does not fit.
    """
    return _load_pair(ctx, identity.cert, identity.key)


def trust_bundle(ctx: ssl.SSLContext, identity: Identity) -> None:
    """Add the identity's current CA bundle to a live context's trust (after a rotation: the
    successor of an intermediate). OpenSSL only adds: what the bundle dropped stays trusted
    by this context until it is made anew (`LiveServerContext.reload` makes one).

    Raises:
        FileNotFoundError / ssl.SSLError: the bundle is missing or unusable.
    """
    ctx.load_verify_locations(cafile=str(identity.ca))


def _load_pair(ctx: ssl.SSLContext, cert_path: Path, key_path: Path) -> int:
    for attempt in range(LOAD_ATTEMPTS):
        cert, key = resolve_pair(cert_path, key_path)
        try:
            ctx.load_cert_chain(str(cert), str(key))
            return x509.load_pem_x509_certificates(cert.read_bytes())[0].serial_number
        except FileNotFoundError:  # that generation was pruned meanwhile: take the new one
            if attempt == LOAD_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


class LiveServerContext:
    """One server context for the server's lifetime; `reload()` switches new handshakes over."""

    def __init__(self, identity: Identity, *, require_client_cert: bool = True) -> None:
        """Load the identity now.

        Raises:
            FileNotFoundError / ssl.SSLError: a file is missing or unusable.
        """
        self.identity = identity
        self.require_client_cert = require_client_cert
        self._lock = threading.Lock()
        self.context = server_ssl_context(identity, require_client_cert=require_client_cert)
        self._current = self.context
        self.serial = identity.certificate().serial_number
        self.context.sni_callback = self._choose

    def _choose(self, conn: ssl.SSLObject, _name: str | None, _ctx: ssl.SSLContext) -> None:
        current = self._current  # one reference read: either the old or the new context
        if current is not conn.context:
            conn.context = current

    def reload(self) -> int:
        """Present the identity's current files from now on; returns the certificate's serial.

        Raises:
            FileNotFoundError / ssl.SSLError: the new files are unusable (the old stay in use).
        """
        with self._lock:
            fresh = server_ssl_context(self.identity, require_client_cert=self.require_client_cert)
            self._current = fresh  # new handshakes now complete on a fully loaded context
            self.serial = swap_certificate(self.context, self.identity)  # the live one catches up
            return self.serial
