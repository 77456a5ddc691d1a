"""Key policy, key generation and the signature hash that fits a key (RFC 5758, RFC 8410)."""

from __future__ import annotations

import hashlib
from typing import Literal

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificateIssuerPublicKeyTypes,
    CertificatePublicKeyTypes,
)

from pkiforge.errors import InvalidInput, WeakKey

KeyType = Literal["rsa2048", "rsa3072", "rsa4096", "p256", "p384", "ed25519"]
KEY_TYPES: tuple[KeyType, ...] = ("rsa2048", "rsa3072", "rsa4096", "p256", "p384", "ed25519")
_ALIASES = {
    "rsa": "rsa2048",
    "rsa-2048": "rsa2048",
    "rsa-3072": "rsa3072",
    "rsa-4096": "rsa4096",
    "ec": "p256",
    "ecdsa": "p256",
    "ecdsa-p256": "p256",
    "p-256": "p256",
    "secp256r1": "p256",
    "ecdsa-p384": "p384",
    "p-384": "p384",
    "secp384r1": "p384",
}
MIN_RSA_BITS = 2048
MAX_RSA_BITS = 8192
_CURVES = {"secp256r1": "P-256", "secp384r1": "P-384"}


def parse_key_type(text: str) -> KeyType:
    """Normalise a user's key type (`rsa4096`, `p256`, `ecdsa-p384`, `ed25519` ...).

    Raises:
        InvalidInput: the key type is unknown.
    """
    value = text.strip().lower()
    value = _ALIASES.get(value, value)
    for known in KEY_TYPES:
        if value == known:
            return known
    raise InvalidInput(
        f"unknown key type {text!r}: use one of {', '.join(KEY_TYPES)}", field="key_type"
    )


def generate_key(key_type: KeyType) -> CertificateIssuerPrivateKeyTypes:
    """Generate a private key of the given type."""
    if key_type.startswith("rsa"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(key_type[3:]))
    if key_type == "p256":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "p384":
        return ec.generate_private_key(ec.SECP384R1())
    return ed25519.Ed25519PrivateKey.generate()


def check_public_key(key: CertificatePublicKeyTypes, field: str = "public_key") -> None:
    """Apply the key policy: RSA 2048-8192 with e=65537, ECDSA P-256/P-384, Ed25519.

    Raises:
        WeakKey: the key is of a refused type or size.
    """
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise WeakKey(
                f"RSA key of {key.key_size} bits is too weak: at least {MIN_RSA_BITS} required",
                field=field,
            )
        if key.key_size > MAX_RSA_BITS:
            raise WeakKey(f"RSA key of {key.key_size} bits exceeds {MAX_RSA_BITS}", field=field)
        if key.public_numbers().e != 65537:
            raise WeakKey("RSA public exponent must be 65537", field=field)
        return
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in _CURVES:
            raise WeakKey(
                f"elliptic curve {key.curve.name} is not allowed: use P-256 or P-384", field=field
            )
        return
    if isinstance(key, ed25519.Ed25519PublicKey):
        return
    raise WeakKey(
        f"{type(key).__name__.removeprefix('_')} keys are not allowed: "
        "use RSA (>= 2048 bits), ECDSA P-256/P-384 or Ed25519",
        field=field,
    )


def describe_key(key: CertificatePublicKeyTypes) -> str:
    """A short human name such as `RSA-2048`, `ECDSA P-256`, `Ed25519`."""
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA-{key.key_size}"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"ECDSA {_CURVES.get(key.curve.name, key.curve.name)}"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519"
    return type(key).__name__


def signature_hash(key: CertificateIssuerPublicKeyTypes) -> hashes.HashAlgorithm | None:
    """The hash an issuer with this key signs with (None for Ed25519, RFC 8410 §6)."""
    if isinstance(key, ed25519.Ed25519PublicKey):
        return None
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp384r1":
        return hashes.SHA384()
    return hashes.SHA256()


def as_issuer_public_key(key: CertificatePublicKeyTypes) -> CertificateIssuerPublicKeyTypes:
    """Narrow a public key to one that can sign (rejects X25519/X448 subject keys).

    Raises:
        WeakKey: the key cannot be used by a CA.
    """
    if isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey):
        return key
    raise WeakKey(f"{describe_key(key)} keys cannot sign certificates", field="public_key")


def spki_sha256(key: CertificatePublicKeyTypes) -> str:
    """Hex SHA-256 of the DER SubjectPublicKeyInfo (a key fingerprint)."""
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def private_key_pem(key: CertificateIssuerPrivateKeyTypes) -> bytes:
    """Unencrypted PKCS#8 PEM, for a server-made leaf key handed to its owner once."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def key_type_of(key: CertificatePublicKeyTypes) -> KeyType:
    """The policy name (`p256`, `rsa2048` ...) of a public key, to make another of its kind.

    Raises:
        InvalidInput: a key type pkiforge does not make.
    """
    if isinstance(key, ec.EllipticCurvePublicKey):
        return parse_key_type(key.curve.name)
    if isinstance(key, rsa.RSAPublicKey):
        return parse_key_type(f"rsa{key.key_size}")
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "ed25519"
    raise InvalidInput("unsupported key type", field="key_type")
