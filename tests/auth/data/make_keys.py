"""Generate the committed client test keys once: `python tests/auth/data/make_keys.py`.

The keys are test data, never secrets; they are committed so that no test generates an RSA key.
The rfc9421-* files are copied verbatim from RFC 9421 Appendix B.1 and are not generated here.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

HERE = Path(__file__).parent


def _write(name: str, key: object) -> None:
    pem = key.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    (HERE / f"{name}.pem").write_bytes(pem)


def main() -> None:
    _write("client-rsa2048", rsa.generate_private_key(65537, 2048))
    _write("client-rsa2048-b", rsa.generate_private_key(65537, 2048))
    _write("weak-rsa1024", rsa.generate_private_key(65537, 1024))
    _write("weak-rsa2048-e3", rsa.generate_private_key(3, 2048))
    _write("client-p256", ec.generate_private_key(ec.SECP256R1()))
    _write("client-p384", ec.generate_private_key(ec.SECP384R1()))
    _write("other-p521", ec.generate_private_key(ec.SECP521R1()))
    _write("other-secp256k1", ec.generate_private_key(ec.SECP256K1()))
    _write("client-ed25519", ed25519.Ed25519PrivateKey.generate())
    _write("other-ed448", ed448.Ed448PrivateKey.generate())


if __name__ == "__main__":
    main()
