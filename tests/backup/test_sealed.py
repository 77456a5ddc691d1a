"""The sealed container: what it opens with, and everything that must make it refuse."""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path

import pytest

from pkiforge.backup.sealed import (
    MAGIC,
    TAG_BYTES,
    SealingWriter,
    Secret,
    parse_key_file,
    unseal,
)
from pkiforge.errors import IntegrityError, InvalidInput

PASS = Secret(passphrase=b"backup-passphrase-0123")
KEY = Secret(key=bytes(range(32)))
DATA = b"".join(i.to_bytes(4, "big") for i in range(300_000))  # over one read chunk


def seal(path: Path, secret: Secret, data: bytes = DATA) -> Path:
    with path.open("wb") as f:
        writer = SealingWriter(f, secret, log2_n=14)
        writer.write(data[:1000])
        writer.write(data[1000:])
        writer.close()
    return path


def opened(path: Path, secret: Secret) -> bytes:
    out = io.BytesIO()
    unseal(path, secret, out)
    return out.getvalue()


@pytest.mark.parametrize("secret", [PASS, KEY], ids=["passphrase", "key"])
def test_round_trip(tmp_path: Path, secret: Secret) -> None:
    path = seal(tmp_path / "b", secret)
    assert DATA[:64] not in path.read_bytes()  # encrypted
    assert opened(path, secret) == DATA


def test_each_backup_has_its_own_salt_and_nonce(tmp_path: Path) -> None:
    a = seal(tmp_path / "a", KEY).read_bytes()
    b = seal(tmp_path / "b", KEY).read_bytes()
    assert a[:200] != b[:200] and a[-TAG_BYTES:] != b[-TAG_BYTES:]


def _header_end(raw: bytes) -> int:
    (length,) = struct.unpack(">I", raw[len(MAGIC) : len(MAGIC) + 4])
    return len(MAGIC) + 4 + length


def _flip(raw: bytes, at: int) -> bytes:
    return raw[:at] + bytes([raw[at] ^ 1]) + raw[at + 1 :]


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda r: _flip(r, _header_end(r) + 10), id="ciphertext"),
        pytest.param(lambda r: _flip(r, len(r) - 1), id="tag"),
        pytest.param(lambda r: r[:-1], id="cut-by-one"),
        pytest.param(lambda r: r[: _header_end(r) + 100], id="cut-short"),
        pytest.param(lambda r: r + b"x", id="appended"),
        pytest.param(
            lambda r: r.replace(b'"nonce": "', b'"nonce": "A', 1).replace(
                struct.pack(">I", _header_end(r) - len(MAGIC) - 4),
                struct.pack(">I", _header_end(r) - len(MAGIC) - 3),
                1,
            ),
            id="header-edited",
        ),
    ],
)
def test_any_change_is_refused(tmp_path: Path, damage: object) -> None:
    path = seal(tmp_path / "b", PASS)
    path.write_bytes(damage(path.read_bytes()))  # type: ignore[operator]
    with pytest.raises(IntegrityError):
        opened(path, PASS)


def test_authenticated_header_cannot_lower_the_kdf_cost(tmp_path: Path) -> None:
    """The scrypt cost sits in the header: an edit to it fails the tag, not just the KDF."""
    path = seal(tmp_path / "b", PASS)
    raw = path.read_bytes()
    end = _header_end(raw)
    header = json.loads(raw[len(MAGIC) + 4 : end])
    header["kdf"]["log2_n"] = 15
    new = json.dumps(header, sort_keys=True).encode()
    path.write_bytes(MAGIC + struct.pack(">I", len(new)) + new + raw[end:])
    with pytest.raises(IntegrityError):
        opened(path, PASS)


def test_wrong_passphrase_and_wrong_kind(tmp_path: Path) -> None:
    path = seal(tmp_path / "b", PASS)
    with pytest.raises(IntegrityError, match="wrong passphrase"):
        opened(path, Secret(passphrase=b"another-passphrase-0123"))
    with pytest.raises(InvalidInput, match="sealed with a passphrase"):
        opened(path, KEY)
    keyed = seal(tmp_path / "k", KEY)
    with pytest.raises(InvalidInput, match="sealed with a key file"):
        opened(keyed, PASS)


def test_not_a_backup(tmp_path: Path) -> None:
    path = tmp_path / "x"
    path.write_bytes(b"hello")
    with pytest.raises(IntegrityError, match="not a pkiforge backup"):
        opened(path, PASS)


def test_secrets_are_checked_and_never_shown() -> None:
    with pytest.raises(InvalidInput, match="at least 12"):
        Secret(passphrase=b"short")
    assert "0123" not in repr(PASS) and "0123" not in str(PASS)
    assert parse_key_file(b"00" * 32 + b"\n") == bytes(32)
    assert parse_key_file(bytes(range(32))) == bytes(range(32))
    for bad in (b"00" * 31, b"zz" * 32, b""):
        with pytest.raises(InvalidInput, match="64 hex digits"):
            parse_key_file(bad)
