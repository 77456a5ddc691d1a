"""RFC 9421 §3.3 signature algorithms, the client key policy, fingerprints and key ids."""

from __future__ import annotations

import hashlib
import secrets
from enum import StrEnum

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from pkiforge.errors import InvalidInput, WeakKey

__all__ = [
    "PrivateKey",
    "PublicKey",
    "SignatureAlgorithm",
    "algorithm_for_key",
    "check_key_policy",
    "fingerprint",
    "generate_private_key",
    "key_fits_algorithm",
    "load_public_key",
    "new_key_id",
    "sign",
    "verify",
]

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey

MIN_RSA_BITS = 2048
MAX_RSA_BITS = 8192  # bounds the cost of one verification an unauthenticated caller can cause


class SignatureAlgorithm(StrEnum):
    """The asymmetric algorithms of the RFC 9421 §6.2.2 registry that pkiforge accepts."""

    RSA_PSS_SHA512 = "rsa-pss-sha512"
    RSA_V1_5_SHA256 = "rsa-v1_5-sha256"
    ECDSA_P256_SHA256 = "ecdsa-p256-sha256"
    ECDSA_P384_SHA384 = "ecdsa-p384-sha384"
    ED25519 = "ed25519"


_CURVES: dict[SignatureAlgorithm, tuple[type[ec.EllipticCurve], hashes.HashAlgorithm, int]] = {
    SignatureAlgorithm.ECDSA_P256_SHA256: (ec.SECP256R1, hashes.SHA256(), 32),
    SignatureAlgorithm.ECDSA_P384_SHA384: (ec.SECP384R1, hashes.SHA384(), 48),
}


def check_key_policy(key: PublicKey | PrivateKey | object) -> None:
    """Refuse keys outside the policy: RSA 2048-8192 bits, P-256, P-384, Ed25519.

    Raises:
        WeakKey: an RSA key that is too small or has a weak public exponent.
        InvalidInput: any other key type or curve.
    """
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        size = key.key_size
        if size < MIN_RSA_BITS:
            raise WeakKey(f"RSA key of {size} bits refused; at least {MIN_RSA_BITS} required")
        if size > MAX_RSA_BITS:
            raise InvalidInput(f"RSA key of {size} bits refused; at most {MAX_RSA_BITS} allowed")
        exponent = _public_numbers(key).e
        if exponent < 65537 or exponent % 2 == 0:
            raise WeakKey("RSA public exponent refused; use 65537")
        return
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1 | ec.SECP384R1):
            raise InvalidInput(f"EC curve {key.curve.name} refused; use P-256 or P-384")
        return
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return
    raise InvalidInput(
        f"key type {type(key).__name__} refused; use RSA (2048+), P-256, P-384 or Ed25519"
    )


def _public_numbers(key: rsa.RSAPrivateKey | rsa.RSAPublicKey) -> rsa.RSAPublicNumbers:
    public = key.public_key() if isinstance(key, rsa.RSAPrivateKey) else key
    return public.public_numbers()


def algorithm_for_key(key: PublicKey | PrivateKey) -> SignatureAlgorithm:
    """The default algorithm for a key: rsa-pss-sha512 for RSA, the curve's ECDSA, ed25519.

    Raises:
        WeakKey, InvalidInput: the key is outside the policy.
    """
    check_key_policy(key)
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return SignatureAlgorithm.RSA_PSS_SHA512
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        if isinstance(key.curve, ec.SECP256R1):
            return SignatureAlgorithm.ECDSA_P256_SHA256
        return SignatureAlgorithm.ECDSA_P384_SHA384
    return SignatureAlgorithm.ED25519


def key_fits_algorithm(algorithm: SignatureAlgorithm, key: PublicKey | PrivateKey) -> bool:
    """Whether `key` is the right type (and curve) for `algorithm`."""
    if algorithm in (SignatureAlgorithm.RSA_PSS_SHA512, SignatureAlgorithm.RSA_V1_5_SHA256):
        return isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey)
    if algorithm is SignatureAlgorithm.ED25519:
        return isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey)
    curve = _CURVES[algorithm][0]
    return isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) and isinstance(
        key.curve, curve
    )


def _require_fit(algorithm: SignatureAlgorithm, key: PublicKey | PrivateKey) -> None:
    if not key_fits_algorithm(algorithm, key):
        raise InvalidInput(f"key type does not fit algorithm {algorithm}", field="algorithm")


def _rsa_padding(
    algorithm: SignatureAlgorithm,
) -> tuple[padding.AsymmetricPadding, hashes.HashAlgorithm]:
    if algorithm is SignatureAlgorithm.RSA_PSS_SHA512:
        # RFC 9421 §3.3.1: MGF1 with SHA-512 and a 64-byte salt.
        return padding.PSS(mgf=padding.MGF1(hashes.SHA512()), salt_length=64), hashes.SHA512()
    return padding.PKCS1v15(), hashes.SHA256()  # §3.3.2


def sign(algorithm: SignatureAlgorithm, private_key: PrivateKey, message: bytes) -> bytes:
    """Sign `message` (the signature base) with `private_key` (RFC 9421 §3.3).

    Raises:
        InvalidInput: the key does not fit the algorithm.
    """
    _require_fit(algorithm, private_key)
    if isinstance(private_key, rsa.RSAPrivateKey):
        pad, digest = _rsa_padding(algorithm)
        return private_key.sign(message, pad, digest)
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        _, digest, size = _CURVES[algorithm]
        # §3.3.4/§3.3.5: the signature is r || s, each left-padded to the field size.
        r, s = decode_dss_signature(private_key.sign(message, ec.ECDSA(digest)))
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    return private_key.sign(message)


def verify(
    algorithm: SignatureAlgorithm, public_key: PublicKey, signature: bytes, message: bytes
) -> bool:
    """Whether `signature` over `message` verifies with `public_key` under `algorithm`."""
    if not key_fits_algorithm(algorithm, public_key):
        return False
    try:
        if isinstance(public_key, rsa.RSAPublicKey):
            pad, digest = _rsa_padding(algorithm)
            public_key.verify(signature, message, pad, digest)
        elif isinstance(public_key, ec.EllipticCurvePublicKey):
            _, digest, size = _CURVES[algorithm]
            if len(signature) != 2 * size:
                return False
            r = int.from_bytes(signature[:size], "big")
            s = int.from_bytes(signature[size:], "big")
            public_key.verify(encode_dss_signature(r, s), message, ec.ECDSA(digest))
        else:
            public_key.verify(signature, message)
    except InvalidSignature:
        return False
    return True


def load_public_key(pem: bytes) -> PublicKey:
    """Load a PEM SubjectPublicKeyInfo and check it against the key policy.

    Raises:
        InvalidInput: not a PEM public key, or a type outside the policy.
        WeakKey: the key is too weak.
    """
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise InvalidInput("not a PEM public key", field="public_key") from exc
    check_key_policy(key)
    assert isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey)
    return key


def fingerprint(public_key: PublicKey) -> str:
    """SHA-256 of the DER SubjectPublicKeyInfo, lower-case hex."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def generate_private_key(algorithm: SignatureAlgorithm, rsa_bits: int = 3072) -> PrivateKey:
    """A fresh private key for `algorithm` (RSA: `rsa_bits`, 2048-8192, e=65537).

    Raises:
        InvalidInput: `rsa_bits` outside the policy.
    """
    if algorithm in (SignatureAlgorithm.RSA_PSS_SHA512, SignatureAlgorithm.RSA_V1_5_SHA256):
        if not MIN_RSA_BITS <= rsa_bits <= MAX_RSA_BITS:
            raise InvalidInput(
                f"RSA keys must be {MIN_RSA_BITS} to {MAX_RSA_BITS} bits", field="rsa_bits"
            )
        return rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
    if algorithm is SignatureAlgorithm.ED25519:
        return ed25519.Ed25519PrivateKey.generate()
    return ec.generate_private_key(_CURVES[algorithm][0]())


def new_key_id() -> str:
    """A fresh random key id: 128 bits, URL-safe base64 without padding, never starting '-'.

    (A leading '-' would read as an option on every command line that names the key.)
    """
    while True:
        key_id = secrets.token_urlsafe(16)
        if not key_id.startswith("-"):
            return key_id
