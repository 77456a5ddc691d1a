"""The sealed container of a backup: one AES-256-GCM message over the whole archive.

    MAGIC (16 bytes) | header length (4 bytes, big-endian) | header (JSON) | ciphertext | tag

The header says how the key is derived (scrypt from a passphrase, or HKDF-SHA256 from a 32-byte
key file, each with a random salt) and carries the GCM nonce; it is authenticated as GCM's
associated data, so nothing in it can be changed without the tag failing. The archive is
encrypted as a stream (pyca/cryptography's GCM encryptor), so a large database is never held in
memory; on opening, the plaintext goes to a private file and is used only once the tag verifies.
"""

from __future__ import annotations

import base64
import json
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from pkiforge.errors import IntegrityError, InvalidInput

MAGIC = b"PKIFORGE-BACKUP\n"
FORMAT = 1
TAG_BYTES = 16
CHUNK = 1 << 20
MIN_PASSPHRASE = 12
KEY_BYTES = 32
# scrypt cost: 2**17 x 8 x 128 bytes = 128 MiB and well under a second, once per backup
DEFAULT_LOG2_N = 17
MIN_LOG2_N, MAX_LOG2_N = 14, 20
_HKDF_INFO = b"pkiforge backup v1"


@dataclass(frozen=True)
class Secret:
    """What a backup is sealed with: a passphrase, or a raw 32-byte key (never shown)."""

    passphrase: bytes | None = None
    key: bytes | None = None

    def __post_init__(self) -> None:
        if (self.passphrase is None) == (self.key is None):
            raise ValueError("a backup secret is a passphrase or a key, not both")
        if self.passphrase is not None and len(self.passphrase) < MIN_PASSPHRASE:
            raise InvalidInput(
                f"the backup passphrase must be at least {MIN_PASSPHRASE} characters",
                field="backup_passphrase",
            )
        if self.key is not None and len(self.key) != KEY_BYTES:
            raise InvalidInput(
                f"a backup key is {KEY_BYTES} bytes (64 hex digits)", field="backup_key_file"
            )

    def __repr__(self) -> str:
        return "Secret(passphrase)" if self.passphrase is not None else "Secret(key)"

    @property
    def kind(self) -> str:
        return "passphrase" if self.passphrase is not None else "key"


def parse_key_file(data: bytes) -> bytes:
    """A key file: 64 hex digits (`openssl rand -hex 32`) or 32 raw bytes.

    Raises:
        InvalidInput: neither.
    """
    text = data.strip()
    try:
        if len(text) == 2 * KEY_BYTES:
            return bytes.fromhex(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        pass
    if len(data) == KEY_BYTES:
        return data
    raise InvalidInput(
        f"the backup key file must hold {KEY_BYTES} bytes as 64 hex digits "
        "(make one with `openssl rand -hex 32`)",
        field="backup_key_file",
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(value: Any) -> bytes:
    if not isinstance(value, str):
        raise ValueError("not base64 text")
    return base64.b64decode(value, validate=True)


def _derive(secret: Secret, kdf: dict[str, Any]) -> bytes:
    salt = _unb64(kdf["salt"])
    if kdf.get("name") == "scrypt":
        if secret.passphrase is None:
            raise InvalidInput(
                "this backup was sealed with a passphrase; give it (not a key file)",
                field="backup_passphrase",
            )
        log2_n = int(kdf["log2_n"])
        if not MIN_LOG2_N <= log2_n <= MAX_LOG2_N or kdf.get("r") != 8 or kdf.get("p") != 1:
            raise ValueError("scrypt parameters out of range")
        return Scrypt(salt=salt, length=KEY_BYTES, n=2**log2_n, r=8, p=1).derive(secret.passphrase)
    if kdf.get("name") == "hkdf-sha256":
        if secret.key is None:
            raise InvalidInput(
                "this backup was sealed with a key file; give it (not a passphrase)",
                field="backup_key_file",
            )
        return HKDF(hashes.SHA256(), KEY_BYTES, salt, _HKDF_INFO).derive(secret.key)
    raise ValueError("unknown key derivation")


def _new_kdf(secret: Secret, log2_n: int) -> dict[str, Any]:
    salt = _b64(os.urandom(16))
    if secret.passphrase is not None:
        if not MIN_LOG2_N <= log2_n <= MAX_LOG2_N:
            raise InvalidInput(
                f"the scrypt cost (log2 N) must be {MIN_LOG2_N} to {MAX_LOG2_N}",
                field="kdf_log2_n",
            )
        return {"name": "scrypt", "salt": salt, "log2_n": log2_n, "r": 8, "p": 1}
    return {"name": "hkdf-sha256", "salt": salt}


class SealingWriter:
    """A write-only file object: what is written is encrypted to `out`; `close` adds the tag."""

    def __init__(self, out: IO[bytes], secret: Secret, *, log2_n: int = DEFAULT_LOG2_N) -> None:
        kdf = _new_kdf(secret, log2_n)
        nonce = os.urandom(12)
        header = json.dumps(
            {"format": FORMAT, "cipher": "AES-256-GCM", "kdf": kdf, "nonce": _b64(nonce)},
            sort_keys=True,
        ).encode()
        preamble = MAGIC + struct.pack(">I", len(header)) + header
        self._encryptor = Cipher(algorithms.AES(_derive(secret, kdf)), modes.GCM(nonce)).encryptor()
        self._encryptor.authenticate_additional_data(preamble)
        self._out = out
        self._out.write(preamble)
        self.closed = False

    def write(self, data: bytes) -> int:
        self._out.write(self._encryptor.update(data))
        return len(data)

    def close(self) -> None:
        if self.closed:
            return
        self._out.write(self._encryptor.finalize())
        self._out.write(self._encryptor.tag)
        self.closed = True


def _read_preamble(f: IO[bytes], name: str) -> tuple[bytes, dict[str, Any]]:
    def bad(what: str) -> IntegrityError:
        return IntegrityError(f"{name} is not a pkiforge backup ({what})", field="backup")

    magic = f.read(len(MAGIC))
    if magic != MAGIC:
        raise bad("it does not start with the backup marker")
    raw_len = f.read(4)
    if len(raw_len) != 4:
        raise bad("it is cut short")
    (length,) = struct.unpack(">I", raw_len)
    if length > 4096:
        raise bad("its header is too long")
    header_bytes = f.read(length)
    try:
        header = json.loads(header_bytes)
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise ValueError("unknown format")
        if header.get("cipher") != "AES-256-GCM" or not isinstance(header.get("kdf"), dict):
            raise ValueError("unknown cipher")
    except ValueError:
        raise bad("its header is not one this version reads") from None
    return magic + raw_len + header_bytes, header


def unseal(
    path: Path, secret: Secret, out: IO[bytes], progress: Callable[[int], None] | None = None
) -> None:
    """Decrypt the archive at `path` into `out`; the caller may use `out` only if this returns.

    Raises:
        IntegrityError: not a backup, cut short, altered, or the wrong passphrase or key (GCM
            cannot tell these apart). InvalidInput: a passphrase where a key is needed, or
            the reverse.
    """
    name = str(path)
    size = path.stat().st_size
    with path.open("rb") as f:
        preamble, header = _read_preamble(f, name)
        body = size - len(preamble) - TAG_BYTES
        if body < 0:
            raise IntegrityError(f"{name} is cut short", field="backup")
        try:
            key = _derive(secret, header["kdf"])
            nonce = _unb64(header["nonce"])
            if len(nonce) != 12:
                raise ValueError("bad nonce")
        except InvalidInput:
            raise  # a passphrase given for a key, or the reverse: say which
        except (KeyError, ValueError, TypeError):
            raise IntegrityError(
                f"{name}: its header is not one this version reads", field="backup"
            ) from None
        f.seek(size - TAG_BYTES)
        tag = f.read(TAG_BYTES)
        f.seek(len(preamble))
        decryptor = Cipher(algorithms.AES(key), modes.GCM(nonce, tag)).decryptor()
        decryptor.authenticate_additional_data(preamble)
        left = body
        while left:
            chunk = f.read(min(CHUNK, left))
            if not chunk:
                raise IntegrityError(f"{name} is cut short", field="backup")
            left -= len(chunk)
            out.write(decryptor.update(chunk))
            if progress is not None:
                progress(len(chunk))
        try:
            out.write(decryptor.finalize())
        except InvalidTag:
            raise IntegrityError(
                f"{name} cannot be opened: wrong {secret.kind}, or the file was altered or cut",
                field="backup",
            ) from None
