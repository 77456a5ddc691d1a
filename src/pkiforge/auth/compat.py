"""The origin documents' request-signing scheme ("PKI"), kept for existing clients.

A request carries three headers::

    Authorization: PKI <key_id>:<base64 signature>
    X-Timestamp:   <Unix seconds, decimal>
    X-Nonce:       <random string>

and optionally ``X-Signed-Headers: <comma-separated header names>``.

What is canonicalised (the exact bytes that are signed) is the UTF-8 encoding of::

    json.dumps({"method": M, "url": U, "headers": H, "body": B,
                "timestamp": T, "nonce": N}, separators=(",", ":"), sort_keys=True)

with ``ensure_ascii`` left on (non-ASCII characters become ``\\uXXXX`` escapes), where

- ``M`` is the request method, upper-cased;
- ``U`` is the full target URI as the client sent it (scheme, host, optional port, path
  and query exactly as on the wire), e.g. ``https://api.example.com/v1/x?a=1``;
- ``H`` is an object holding ONLY the headers named in ``X-Signed-Headers`` (default: none,
  so ``{}``): each name lower-cased and stripped, each value stripped, repeated lines joined
  with ``", "``; a named header that is absent makes the request fail;
- ``B`` is the body decoded as UTF-8 (``""`` when there is none); a body that is not UTF-8
  cannot use this scheme;
- ``T`` is the integer from ``X-Timestamp``; ``N`` is ``X-Nonce``.

The signature is RSA-PSS with SHA-256 and MGF1-SHA-256 over those bytes directly (the
salt may be any length; clients of the origin documents use the maximum).

Differences from the origin documents, each fixing a known weak point while keeping the
shape of the scheme:

- the origin signed every request header, so any proxy that added or changed one (Via,
  X-Forwarded-For, Accept-Encoding) broke every signature; now only declared headers are
  signed, and because their names are part of ``H`` a stripped or edited declaration fails;
- the origin hashed the payload with SHA-256 and then signed the hash with a scheme that
  hashes again, which no other implementation can verify; now the bytes are signed as is;
- the origin read a private attribute of the request for the body; here the body is the
  exact bytes received.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from pkiforge.auth.algorithms import PublicKey
from pkiforge.auth.canonical import HttpRequest
from pkiforge.errors import AuthenticationFailed

__all__ = [
    "LEGACY_SCHEME",
    "LegacySignature",
    "legacy_payload",
    "legacy_sign",
    "parse_legacy_request",
    "verify_legacy_signature",
]

LEGACY_SCHEME = "PKI"


@dataclass(frozen=True, slots=True)
class LegacySignature:
    """The parts of a legacy-signed request the verifier needs."""

    key_id: str
    signature: bytes
    timestamp: int
    nonce: str
    payload: bytes


def legacy_payload(
    request: HttpRequest, signed_headers: Mapping[str, str], timestamp: int, nonce: str
) -> bytes:
    """The canonical bytes the legacy scheme signs (see the module docstring).

    Raises:
        AuthenticationFailed: the body is not UTF-8.
    """
    try:
        body = request.body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AuthenticationFailed("legacy PKI scheme needs a UTF-8 body") from exc
    document = {
        "method": request.method.upper(),
        "url": request.target_uri,
        "headers": {name.strip().lower(): value.strip() for name, value in signed_headers.items()},
        "body": body,
        "timestamp": timestamp,
        "nonce": nonce,
    }
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode("utf-8")


def legacy_sign(private_key: rsa.RSAPrivateKey, payload: bytes) -> str:
    """Sign legacy canonical bytes; the base64 text for the Authorization header."""
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.MAX_LENGTH)
    return base64.b64encode(private_key.sign(payload, pss, hashes.SHA256())).decode("ascii")


def verify_legacy_signature(public_key: PublicKey, signature: bytes, payload: bytes) -> bool:
    """Whether a legacy signature verifies: RSA-PSS SHA-256 over the payload, any salt."""
    if not isinstance(public_key, rsa.RSAPublicKey):
        return False
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO)
    try:
        public_key.verify(signature, payload, pss, hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def _single(request: HttpRequest, name: str) -> str:
    lines = request.field_lines(name)
    if not lines:
        raise AuthenticationFailed(f"missing {name} header (legacy PKI scheme)")
    if len(lines) > 1:
        raise AuthenticationFailed(f"{name} header appears more than once")
    return lines[0].strip()


def _declared_headers(request: HttpRequest) -> dict[str, str]:
    lines = request.field_lines("X-Signed-Headers")
    names = [n.strip().lower() for line in lines for n in line.split(",") if n.strip()]
    headers: dict[str, str] = {}
    for name in names:
        values = request.field_lines(name)
        if not values:
            raise AuthenticationFailed(f"signed header {name!r} is missing")
        headers[name] = ", ".join(v.strip() for v in values)
    return headers


def parse_legacy_request(request: HttpRequest) -> LegacySignature:
    """Extract and canonicalise a legacy-signed request.

    Raises:
        AuthenticationFailed: a header is missing or malformed.
    """
    scheme, _, credentials = _single(request, "Authorization").partition(" ")
    key_id, sep, encoded = credentials.strip().partition(":")
    if scheme != LEGACY_SCHEME or not sep or not key_id:
        raise AuthenticationFailed("Authorization must be 'PKI <key_id>:<signature>'")
    try:
        signature = base64.b64decode(encoded.strip(), validate=True)
    except binascii.Error as exc:
        raise AuthenticationFailed("legacy signature is not base64") from exc
    timestamp_text = _single(request, "X-Timestamp")
    if not (timestamp_text.isascii() and timestamp_text.isdigit()) or len(timestamp_text) > 12:
        raise AuthenticationFailed("X-Timestamp must be Unix seconds")
    timestamp = int(timestamp_text)
    nonce = _single(request, "X-Nonce")
    payload = legacy_payload(request, _declared_headers(request), timestamp, nonce)
    return LegacySignature(key_id, signature, timestamp, nonce, payload)
