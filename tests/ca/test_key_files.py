"""The file key store: references resolve under the home (or stand absolute), a decrypted key
is reused while its file is unchanged, and a replaced file is read again."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from pkiforge.errors import InvalidInput, NotFound
from pkiforge.signers.file import FileKeyStore

from .helpers import leaf_key

PASSPHRASE = b"key-file-test-passphrase-0123"


def _public(key: object) -> bytes:
    return key.public_key().public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_a_key_is_decrypted_once_and_read_again_when_its_file_is_replaced(
    tmp_path: Path,
) -> None:
    keys = FileKeyStore(tmp_path, PASSPHRASE, log2_n=14)
    first, second = leaf_key("p256"), leaf_key("p256-b")
    ref = keys.save("services", first)
    assert ref == "file:ca/services/key.pem"
    loaded = keys.load(ref)
    assert keys.load(ref) is loaded  # unchanged file: the decrypted key is reused
    assert _public(loaded) == _public(first)
    path = tmp_path / "ca" / "services" / "key.pem"
    before = path.stat()
    path.unlink()
    keys.save("services", second)  # a rotated key, written where the old one was
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000))
    assert _public(keys.load(ref)) == _public(second)


def test_absolute_bare_and_unknown_references(tmp_path: Path) -> None:
    keys = FileKeyStore(tmp_path / "home", PASSPHRASE, log2_n=14)
    offline = tmp_path / "offline" / "root.pem"
    ref = keys.save("root", leaf_key("p256"), location=str(offline))
    assert ref == f"file:{offline}"
    assert _public(keys.load(ref)) == _public(keys.load(str(offline)))  # bare path = file:
    with pytest.raises(InvalidInput, match="key backend 'pkcs11' is not available"):
        keys.load("pkcs11:token=ca")
    with pytest.raises(NotFound, match=r"CA key file .*missing\.pem not found"):
        keys.load("file:ca/missing.pem")
    with pytest.raises(NotFound):  # asked again: still refused, not remembered as found
        keys.load("file:ca/missing.pem")
