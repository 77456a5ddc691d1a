"""Generate the committed test keys and CSRs once: `python tests/data/make_data.py`.

Keys are unencrypted PKCS#8 PEM (test material only). Every CSR asks for
CN=web.example.internal with SANs DNS:web.example.internal and IP:10.0.0.7.
Re-running overwrites the files; the tests only rely on their kinds, not their bytes.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import NameOID

HERE = Path(__file__).parent
CN = "web.example.internal"


def _keys() -> dict[str, object]:
    return {
        # accepted by the key policy
        "rsa2048": rsa.generate_private_key(65537, 2048),
        "rsa2048-b": rsa.generate_private_key(65537, 2048),
        "p256": ec.generate_private_key(ec.SECP256R1()),
        "p256-b": ec.generate_private_key(ec.SECP256R1()),
        "p384": ec.generate_private_key(ec.SECP384R1()),
        "ed25519": ed25519.Ed25519PrivateKey.generate(),
        # refused by the key policy
        "rsa1024": rsa.generate_private_key(65537, 1024),
        "rsa2048-e3": rsa.generate_private_key(3, 2048),
        "dsa2048": dsa.generate_private_key(2048),
        "p192": ec.generate_private_key(ec.SECP192R1()),
        "p521": ec.generate_private_key(ec.SECP521R1()),
        "secp256k1": ec.generate_private_key(ec.SECP256K1()),
        "ed448": ed448.Ed448PrivateKey.generate(),
    }


def _csr(key: object) -> x509.CertificateSigningRequest:
    algorithm = (
        None
        if isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey)
        else (hashes.SHA256())
    )
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CN)]))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(CN), x509.IPAddress(ipaddress.ip_address("10.0.0.7"))]
            ),
            critical=False,
        )
        .sign(key, algorithm)  # type: ignore[arg-type]
    )


def main() -> None:
    for name, key in _keys().items():
        pem = key.private_bytes(  # type: ignore[attr-defined]
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        (HERE / f"key-{name}.pem").write_bytes(pem)
        csr = _csr(key)
        (HERE / f"csr-{name}.pem").write_bytes(csr.public_bytes(serialization.Encoding.PEM))
        if name == "p256":
            (HERE / "csr-p256.der").write_bytes(csr.public_bytes(serialization.Encoding.DER))
            # same CSR with one bit of the signature flipped: parses, does not verify
            der = bytearray(csr.public_bytes(serialization.Encoding.DER))
            der[-5] ^= 0x01
            bad = x509.load_der_x509_csr(bytes(der))
            (HERE / "csr-bad-signature.pem").write_bytes(
                bad.public_bytes(serialization.Encoding.PEM)
            )


if __name__ == "__main__":
    main()
