"""Enrollment: a service's first certificate, from a one-time token, with a key made locally.

The key is generated here and only its CSR is sent. Key, certificate chain and CA bundle are
stored with `install_pair` (key 0600, old-or-new on any crash) and `write_atomic`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import ssl
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from pkiforge.client.bundle import checked_bundle
from pkiforge.client.core import API
from pkiforge.client.csr import Names, key_pem, make_csr
from pkiforge.client.errors import Unreachable
from pkiforge.client.models import Certificate
from pkiforge.client.payloads import CertificateRequest
from pkiforge.client.tls import Identity
from pkiforge.errors import IntegrityError, InvalidInput
from pkiforge.pairs import Pair, install_pair, write_atomic
from pkiforge.x509.keys import KeyType, generate_key

__all__ = [
    "Enrollment",
    "fetch_root",
    "parse_fingerprint",
    "prepare_enrollment",
    "same_key",
    "store_certificate",
]

log = logging.getLogger("pkiforge.agent")


@dataclass(frozen=True)
class Enrollment:
    """A fresh key and the request that carries its CSR."""

    key: CertificateIssuerPrivateKeyTypes
    request: CertificateRequest


def prepare_enrollment(
    names: Sequence[str],
    identity: Identity,
    *,
    service_id: str | None = None,
    key_type: KeyType = "p256",
    profile: str | None = None,
) -> Enrollment:
    """Make a key on this host and a CSR for `names` (the first DNS name becomes the CN);
    without `profile` the server issues the token's.

    Raises:
        InvalidInput / InvalidName: no names, or a malformed one.
    """
    if not names:
        raise InvalidInput("name at least one DNS name or IP address", field="names")
    for path in (identity.cert, identity.key, identity.ca):  # fail before spending the token
        path.parent.mkdir(parents=True, exist_ok=True)
    parsed = Names.parse(names)
    key = generate_key(key_type)
    csr = make_csr(key, parsed.common_name(), parsed.subject_names())
    request = CertificateRequest(
        csr=csr.decode(),
        service_id=service_id,
        common_name=parsed.common_name(),
        san_dns=parsed.dns,
        san_ip=parsed.ip,
        san_uri=parsed.uri,
        profile=profile,
    )
    return Enrollment(key, request)


def store_certificate(
    identity: Identity,
    certificate: Certificate,
    key: CertificateIssuerPrivateKeyTypes,
    bundle: bytes | None = None,
) -> None:
    """Install key and chain at the identity's paths and, as its CA bundle, the server's
    bundle (`GET /ca/bundle`) if given and it passes `checked_bundle` against the chain's
    root(s), else the root(s).

    Raises:
        IntegrityError: the certificate is not for this key (never store a mismatched pair).
    """
    if not same_key(certificate.certificate, key):
        raise IntegrityError("the issued certificate does not carry this host's key")
    roots = certificate.roots_pem()
    if roots and bundle is not None:
        try:
            roots = checked_bundle(roots, bundle)
        except IntegrityError as exc:
            log.warning("CA bundle not installed, the root only: %s", exc)
    if roots:
        write_atomic(identity.ca, roots)
    install_pair(identity.cert, identity.key, Pair(certificate.fullchain_pem(), key_pem(key)))


def same_key(cert: x509.Certificate, key: CertificateIssuerPrivateKeyTypes) -> bool:
    """True if `cert` certifies the public half of `key`."""
    spki = PublicFormat.SubjectPublicKeyInfo
    return cert.public_key().public_bytes(Encoding.DER, spki) == key.public_key().public_bytes(
        Encoding.DER, spki
    )


SHA256_HEX_DIGITS = 64
_FINGERPRINT_PREFIXES = ("sha256 fingerprint=", "sha256:")  # as openssl and step print them


def parse_fingerprint(text: str) -> str:
    """A SHA-256 fingerprint as 64 lower-case hex digits; colons, spaces and a `sha256:` or
    openssl's `SHA256 Fingerprint=` prefix are allowed.

    Raises:
        InvalidInput: not hex, or not the length of a SHA-256.
    """
    value = text.strip().lower()
    for prefix in _FINGERPRINT_PREFIXES:
        value = value.removeprefix(prefix)
    value = value.replace(":", "").replace(" ", "")
    if any(c not in "0123456789abcdef" for c in value):
        raise InvalidInput(
            "root fingerprint is not hex: give the SHA-256 `pkiforge ca show root` prints",
            field="root_fingerprint",
        )
    if len(value) != SHA256_HEX_DIGITS:
        raise InvalidInput(
            f"root fingerprint has the wrong length: {len(value)} hex digits, a SHA-256 has "
            f"{SHA256_HEX_DIGITS} (as `pkiforge ca show root` prints it)",
            field="root_fingerprint",
        )
    return value


def fetch_root(base_url: str, fingerprint: str, *, timeout: float = 10.0) -> bytes:
    """Download the root certificate once, trusting it only if its SHA-256 matches `fingerprint`.

    This is the trust bootstrap for a host that has a token but no CA bundle yet: the operator
    hands out the root's fingerprint (`pkiforge ca show root`) with the token.

    Raises:
        InvalidInput: `fingerprint` is not a SHA-256 (checked before the server is asked).
        Unreachable: the server cannot be reached.
        IntegrityError: the server's root has another fingerprint.
    """
    wanted = parse_fingerprint(fingerprint)
    insecure = ssl.create_default_context()
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE  # the pin below is the check
    try:
        response = httpx.get(
            f"{base_url.rstrip('/')}{API}/ca/root", verify=insecure, timeout=timeout
        )
    except httpx.TransportError as exc:
        raise Unreachable(f"cannot reach the PKI server at {base_url}: {exc}") from None
    pem = response.content
    try:
        root = x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise IntegrityError("the server did not return a PEM root certificate") from None
    actual = hashlib.sha256(root.public_bytes(Encoding.DER)).hexdigest()
    if not hmac.compare_digest(actual, wanted):
        raise IntegrityError(f"root fingerprint mismatch: expected {wanted}, got {actual}")
    return root.public_bytes(Encoding.PEM)
