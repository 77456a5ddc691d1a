"""What the store keeps for OCSP: delegated responders and signed answers."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509


@dataclass(frozen=True)
class ResponderRecord:
    """A delegated OCSP responder certificate of `issuer` and its sealed private key (the key
    store's `seal`: encrypted under the CA passphrase, never stored in the clear)."""

    issuer: str
    certificate: x509.Certificate
    sealed_key: bytes
    created_at: dt.datetime

    def __repr__(self) -> str:  # the sealed key stays out of logs too
        return f"ResponderRecord({self.issuer!r}, serial={self.certificate.serial_number:x})"


@dataclass(frozen=True)
class CachedAnswer:
    """A signed OCSP response without nonce for one CertID (issuer, serial, hash algorithm)."""

    issuer: str
    serial: int
    algorithm: str  # the CertID's hash ("sha1", "sha256"...): part of what a client matches
    status: str  # "good" or "revoked": what the certificate's status was when signed
    this_update: dt.datetime
    next_update: dt.datetime
    der: bytes
