"""Hand-built JWS for the ACME tests, with pyca/cryptography only: a second implementation,
sharing nothing with the server's (jwcrypto), so a test cannot pass by agreeing with itself."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _int(n: int) -> str:
    return b64(n.to_bytes((n.bit_length() + 7) // 8, "big"))


@dataclass(frozen=True)
class Key:
    alg: str
    private: Any

    def jwk(self) -> dict[str, str]:
        pub = self.private.public_key()
        if isinstance(pub, ec.EllipticCurvePublicKey):
            size = (pub.curve.key_size + 7) // 8
            nums = pub.public_numbers()
            crv = {"secp256r1": "P-256", "secp384r1": "P-384"}[pub.curve.name]
            return {
                "kty": "EC",
                "crv": crv,
                "x": b64(nums.x.to_bytes(size, "big")),
                "y": b64(nums.y.to_bytes(size, "big")),
            }
        if isinstance(pub, rsa.RSAPublicKey):
            nums = pub.public_numbers()
            return {"kty": "RSA", "n": _int(nums.n), "e": _int(nums.e)}
        raw = pub.public_bytes_raw()
        return {"kty": "OKP", "crv": "Ed25519", "x": b64(raw)}

    def thumbprint(self) -> str:
        """RFC 7638: the required members, sorted, no whitespace."""
        jwk = self.jwk()
        required = {
            "EC": ("crv", "kty", "x", "y"),
            "RSA": ("e", "kty", "n"),
            "OKP": ("crv", "kty", "x"),
        }
        members = {k: jwk[k] for k in required[jwk["kty"]]}
        canonical = json.dumps(members, sort_keys=True, separators=(",", ":")).encode()
        return b64(hashlib.sha256(canonical).digest())

    def sign(self, data: bytes) -> bytes:
        key = self.private
        if isinstance(key, ec.EllipticCurvePrivateKey):
            digest = hashes.SHA256() if self.alg == "ES256" else hashes.SHA384()
            r, s = decode_dss_signature(key.sign(data, ec.ECDSA(digest)))
            size = (key.curve.key_size + 7) // 8
            return r.to_bytes(size, "big") + s.to_bytes(size, "big")  # RFC 7518 §3.4
        if isinstance(key, rsa.RSAPrivateKey):
            return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        return key.sign(data)


@functools.cache
def key(alg: str) -> Key:
    """One key per algorithm for the whole run."""
    if alg == "ES256":
        return Key(alg, ec.generate_private_key(ec.SECP256R1()))
    if alg == "ES384":
        return Key(alg, ec.generate_private_key(ec.SECP384R1()))
    if alg == "RS256":
        return Key(alg, rsa.generate_private_key(65537, 2048))
    if alg == "EdDSA":
        return Key(alg, ed25519.Ed25519PrivateKey.generate())
    raise ValueError(alg)


def fresh(alg: str) -> Key:
    """A key no other test used (an account key is one account)."""
    curves = {"ES256": ec.SECP256R1(), "ES384": ec.SECP384R1()}
    if alg in curves:
        return Key(alg, ec.generate_private_key(curves[alg]))
    if alg == "EdDSA":
        return Key(alg, ed25519.Ed25519PrivateKey.generate())
    return key(alg)


def jws(
    signer: Key,
    header: dict[str, Any],
    payload: dict[str, Any] | str | bytes,
    *,
    alg: str | None = None,
) -> bytes:
    """A flattened JWS; `payload` "" is POST-as-GET; `alg` overrides the header's."""
    protected = {"alg": alg or signer.alg, **header}
    p64 = b64(json.dumps(protected).encode())
    if isinstance(payload, bytes):
        body = payload
    elif isinstance(payload, str):
        body = payload.encode()
    else:
        body = json.dumps(payload).encode()
    pl64 = b64(body)
    signature = signer.sign(f"{p64}.{pl64}".encode())
    return json.dumps({"protected": p64, "payload": pl64, "signature": b64(signature)}).encode()


def eab(kid: str, mac_key: bytes, jwk: dict[str, str], url: str) -> dict[str, str]:
    """RFC 8555 §7.3.4: an HS256 JWS over the account key, by the binding key."""
    p64 = b64(json.dumps({"alg": "HS256", "kid": kid, "url": url}).encode())
    pl64 = b64(json.dumps(jwk).encode())
    mac = hmac.new(mac_key, f"{p64}.{pl64}".encode(), hashlib.sha256).digest()
    return {"protected": p64, "payload": pl64, "signature": b64(mac)}
