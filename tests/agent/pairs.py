"""Certificate/key pairs from the fake CA and the committed keys, as PEM files on disk."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, load_pem_private_key

from pkiforge.client.csr import Names, load_key, make_csr
from tests.client.fakeca import FakeCA
from tests.conftest import data_file

KEYS = ("key-p256.pem", "key-p256-b.pem", "key-p384.pem")


def make_pair(ca: FakeCA, key_name: str, folder: Path) -> tuple[Path, Path, int]:
    """Write `<folder>/cert.pem` (leaf + intermediate) and `<folder>/key.pem`; return the serial."""
    key = load_key(data_file(key_name))
    names = Names.parse(["localhost", "127.0.0.1"])
    csr = x509.load_pem_x509_csr(make_csr(key, "localhost", names.subject_names()))
    leaf = ca.issue(csr)
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    chain = leaf.public_bytes(Encoding.PEM) + ca.intermediate.public_bytes(Encoding.PEM)
    cert_path.write_bytes(chain)
    key_path.write_bytes(data_file(key_name))
    return cert_path, key_path, leaf.serial_number


def serial_of_pair(cert: Path, key: Path) -> int:
    """The serial of the pair at these paths; fails if the key does not match the certificate."""
    leaf = x509.load_pem_x509_certificates(cert.read_bytes())[0]
    private = load_pem_private_key(key.read_bytes(), None)
    assert leaf.public_key() == private.public_key(), "certificate and key are a mix of two pairs"
    return leaf.serial_number
