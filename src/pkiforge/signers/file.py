"""CA keys as encrypted PKCS#8 PEM files, mode 0600, under a scrypt-stretched passphrase.

cryptography writes PKCS#8 with PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC) but fixes PBKDF2 at
2,048 iterations and offers no knob. To make guessing a weak passphrase expensive, the PKCS#8
password is not the passphrase itself but scrypt(passphrase, salt, N=2**15, r=8, p=1) (RFC 7914),
base64-encoded. The scrypt parameters and salt (no secret) travel in the same file as an
explanatory line before the PEM block, which RFC 7468 §2 lets parsers ignore:

    pkiforge-kdf: scrypt ln=15 r=8 p=1 salt=<base64>
    -----BEGIN ENCRYPTED PRIVATE KEY-----
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import re
import threading
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from pkiforge.errors import BadPassphrase, InvalidInput, NotFound
from pkiforge.signers.base import split_ref

_HEADER = re.compile(
    rb"^pkiforge-kdf: scrypt ln=(\d+) r=(\d+) p=(\d+) salt=([A-Za-z0-9+/=]+)$", re.MULTILINE
)
MIN_PASSPHRASE = 12


def _stretch(passphrase: bytes, salt: bytes, log2_n: int, r: int, p: int) -> bytes:
    key = Scrypt(salt=salt, length=32, n=2**log2_n, r=r, p=p).derive(passphrase)
    return base64.b64encode(key)


def encrypt_key(
    key: CertificateIssuerPrivateKeyTypes, passphrase: bytes, log2_n: int = 15
) -> bytes:
    """Serialise a private key as KDF line + encrypted PKCS#8 PEM."""
    salt = os.urandom(16)
    password = _stretch(passphrase, salt, log2_n, 8, 1)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(password),
    )
    header = f"pkiforge-kdf: scrypt ln={log2_n} r=8 p=1 salt={base64.b64encode(salt).decode()}\n"
    return header.encode() + pem


def decrypt_key(
    data: bytes, passphrase: bytes, what: str = "CA key"
) -> CertificateIssuerPrivateKeyTypes:
    """Load a key written by `encrypt_key` (or a plain encrypted PKCS#8 PEM).

    Raises:
        BadPassphrase: the passphrase does not open the key (the message never contains it).
        InvalidInput: the file is not an encrypted private key.
    """
    match = _HEADER.search(data)
    password = passphrase
    if match:
        ln, r, p = (int(match.group(i)) for i in (1, 2, 3))
        if not (10 <= ln <= 22 and 1 <= r <= 32 and 1 <= p <= 16):
            raise InvalidInput(f"{what}: KDF parameters out of range", field="key")
        password = _stretch(passphrase, base64.b64decode(match.group(4)), ln, r, p)
    start = data.find(b"-----BEGIN")
    if start < 0:
        raise InvalidInput(f"{what}: no PEM block found", field="key")
    try:
        key = serialization.load_pem_private_key(data[start:], password=password)
    except TypeError:
        raise InvalidInput(
            f"{what} is not encrypted; refusing an unprotected CA key", field="key"
        ) from None
    except ValueError:
        raise BadPassphrase(
            f"could not decrypt {what}: wrong passphrase or corrupted file"
        ) from None
    if not isinstance(
        key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
    ):
        raise InvalidInput(f"{what} is of a type that cannot sign certificates", field="key")
    return key


def write_private(path: Path, data: bytes) -> None:
    """Create `path` with mode 0600 atomically (temp file, fsync, rename); never overwrite.

    Raises:
        Conflict-like FileExistsError: a file is already there.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.parent.chmod(0o700)  # also when it already existed: key folders are private
    if path.exists():
        raise FileExistsError(f"{path} already exists; refusing to overwrite a key")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.link(tmp, path)  # fails if `path` appeared meanwhile: never clobber a key
    finally:
        tmp.unlink(missing_ok=True)


PassphraseSource = Callable[[], bytes]


class FileKeyStore:
    """Keys under `<home>/ca/<name>/key.pem`, or at an explicit location (offline root).

    The passphrase is asked of `passphrase` only when a key is first saved or loaded, so
    read-only commands never prompt.
    """

    def __init__(self, home: Path, passphrase: bytes | PassphraseSource, log2_n: int = 15) -> None:
        self._home = home
        self._source: PassphraseSource = (
            passphrase if callable(passphrase) else (lambda: passphrase)
        )
        self._cached: bytes | None = None
        self._log2_n = log2_n
        # decrypted keys by file and its (mtime, size): a server signs thousands of
        # certificates per key, and each decryption costs a deliberate scrypt (~0.1 s)
        self._keys: dict[Path, tuple[tuple[int, int], CertificateIssuerPrivateKeyTypes]] = {}
        self._paths: dict[str, Path] = {}
        self._lock = threading.Lock()

    @property
    def _passphrase(self) -> bytes:
        if self._cached is None:
            value = self._source()
            if len(value) < MIN_PASSPHRASE:
                raise InvalidInput(
                    f"the CA passphrase must be at least {MIN_PASSPHRASE} characters",
                    field="passphrase",
                )
            self._cached = value
        return self._cached

    def __repr__(self) -> str:  # never show the passphrase
        return f"FileKeyStore(home={str(self._home)!r})"

    def save(
        self, name: str, key: CertificateIssuerPrivateKeyTypes, location: str | None = None
    ) -> str:
        """Encrypt and write the key; return its `file:` reference."""
        path = Path(location) if location else self._home / "ca" / name / "key.pem"
        write_private(path, encrypt_key(key, self._passphrase, self._log2_n))
        ref = path if location else path.relative_to(self._home)
        return f"file:{ref}"

    def seal(self, key: CertificateIssuerPrivateKeyTypes) -> bytes:
        """The key as a key file would hold it (scrypt + encrypted PKCS#8), to store elsewhere."""
        return encrypt_key(key, self._passphrase, self._log2_n)

    def unseal(self, data: bytes) -> CertificateIssuerPrivateKeyTypes:
        """Raises BadPassphrase, InvalidInput."""
        return decrypt_key(data, self._passphrase, "OCSP responder key")

    def set_aside(self, name: str, location: str | None = None) -> str | None:
        """Rename a key file left by an interrupted `init` to `<file>.interrupted-<time>`."""
        path = Path(location) if location else self._home / "ca" / name / "key.pem"
        if not path.exists():
            return None
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
        aside = path.with_name(f"{path.name}.interrupted-{stamp}")
        os.rename(path, aside)  # same directory and mode (0600); the key is kept, not deleted
        return str(aside)

    def load(self, key_ref: str) -> CertificateIssuerPrivateKeyTypes:
        """Raises NotFound, BadPassphrase, InvalidInput."""
        path = self._paths.get(key_ref)  # every issuance loads its CA's key: skip the parsing
        if path is None:
            path = self._paths[key_ref] = self._path(key_ref)
        # one decryption at a time: when many request threads miss together (start-up), the
        # first decrypts and the others find it cached instead of all paying for scrypt
        with self._lock:
            try:
                stat = path.stat()
                version = (stat.st_mtime_ns, stat.st_size)
                cached = self._keys.get(path)
                if cached is not None and cached[0] == version:
                    return cached[1]
                data = path.read_bytes()
            except FileNotFoundError:
                raise NotFound(f"CA key file {path} not found", field="key") from None
            key = decrypt_key(data, self._passphrase, f"CA key {path.name}")
            self._keys[path] = (version, key)
            return key

    def _path(self, key_ref: str) -> Path:
        scheme, location = split_ref(key_ref)
        if scheme != "file":
            raise InvalidInput(f"key backend {scheme!r} is not available", field="key")
        path = Path(location)
        return path if path.is_absolute() else self._home / path
