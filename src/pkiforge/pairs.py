"""A certificate and its key on disk, swapped together (shared by client/, api/ and cli/):
crash-safe storage where a reader sees the old pair or the new pair.

Two files cannot be renamed at once, so the pair lives in generation directories and a single
symlink names the live one; replacing that symlink (one `rename(2)`) is the only commit:

    tls.pem     -> .tls.pem.pkiforge/current/cert.pem      (made once, never changed)
    tls.key     -> .tls.pem.pkiforge/current/key.pem       (made once, never changed)
    tls.pem.bak -> .tls.pem.pkiforge/previous/cert.pem     (and tls.key.bak: the previous pair)
    .tls.pem.pkiforge/current  -> g-<id>                   (the commit point)
    .tls.pem.pkiforge/previous -> g-<id'>
    .tls.pem.pkiforge/g-<id>/{cert.pem,key.pem}            (written in full and fsynced first)
    .tls.pem.pkiforge/.gitignore                           (`*`: git ignores the folder)

Why it is old-or-new: a new generation is written, fsynced and only then published; `current`
is replaced by `rename(2)`, which POSIX makes atomic, and the directory is fsynced after it.
Before that rename every path resolves to the complete old generation, after it to the complete
new one; `previous` is re-pointed before the commit and old generations are deleted only after
it, so neither live generation is ever touched. Plain files found at the paths are first adopted:
copied into a generation and replaced by the symlinks, key first, each step leaving the same old
pair readable. On a first install (no old pair) the key link is made before the cert link, so a
certificate that exists always has its key.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "KEY_MODE",
    "Pair",
    "install_pair",
    "read_pair",
    "resolve_pair",
    "state_dir",
    "write_atomic",
]

KEY_MODE = 0o600
CERT_NAME, KEY_NAME = "cert.pem", "key.pem"
CURRENT, PREVIOUS = "current", "previous"
READ_ATTEMPTS = 5


@dataclass(frozen=True)
class Pair:
    """One certificate chain (PEM, leaf first) and its private key (PEM), read together."""

    cert_pem: bytes
    key_pem: bytes


def state_dir(cert: Path) -> Path:
    """Where the generations of the pair at `cert` live (hidden, next to the certificate)."""
    return cert.parent / f".{cert.name}.pkiforge"


def read_pair(cert: Path, key: Path) -> Pair:
    """Read both files from one generation, even while a renewal commits.

    Raises:
        FileNotFoundError: there is no certificate or key.
    """
    for attempt in range(READ_ATTEMPTS):
        cert_real, key_real = resolve_pair(cert, key)
        try:
            return Pair(cert_real.read_bytes(), key_real.read_bytes())
        except FileNotFoundError:  # pruned after two commits in between: resolve again
            if attempt == READ_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def resolve_pair(cert: Path, key: Path) -> tuple[Path, Path]:
    """The real paths of the live certificate and key, taken from one generation.

    Generation files are written once, so the two paths name a matching pair for as long as
    they exist (an old generation is deleted only after two further renewals).

    Raises:
        FileNotFoundError: there is no certificate or key.
    """
    for attempt in range(READ_ATTEMPTS):
        cert_real, key_real = cert.resolve(strict=True), key.resolve(strict=True)
        if cert.resolve(strict=True) == cert_real:  # no commit between the two lookups
            return cert_real, key_real
        time.sleep(0.001 * (attempt + 1))
    raise FileNotFoundError(f"{cert}: the certificate keeps changing; try again")


def install_pair(cert: Path, key: Path, pair: Pair) -> None:
    """Make `pair` the live certificate and key at `cert` and `key`; keep the old as `.bak`."""
    root = state_dir(cert)
    root.mkdir(mode=0o755, parents=True, exist_ok=True)
    _ignore(root)
    _adopt(cert, key, root)
    generation = _write_generation(root, pair)
    old = _target(root / CURRENT)
    if old is not None:
        _point(root / PREVIOUS, old)
    _point(root / CURRENT, generation.name)  # the commit
    _sync_dir(root)
    _link(key, root / CURRENT / KEY_NAME)
    _link(cert, root / CURRENT / CERT_NAME)
    if old is not None:
        _link(_bak(key), root / PREVIOUS / KEY_NAME)
        _link(_bak(cert), root / PREVIOUS / CERT_NAME)
    _prune(root)


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace one file in a single step (temporary file, fsync, rename, fsync the folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    _write_file(tmp, data, mode)
    os.replace(tmp, path)
    _sync_dir(path.parent)


def _ignore(root: Path) -> None:
    """Keep the generations out of version control: a `.gitignore` of `*` ignores the folder,
    itself included, when the certificate lives in a repository (a deployment's config)."""
    ignore = root / ".gitignore"
    if not ignore.exists():
        write_atomic(ignore, b"# pkiforge's certificate generations: machine state\n*\n")


def _adopt(cert: Path, key: Path, root: Path) -> None:
    """Bring the paths under management without ever showing a mix of two pairs."""
    if _links_to(cert, root / CURRENT / CERT_NAME) and _links_to(key, root / CURRENT / KEY_NAME):
        return
    if cert.exists() and key.exists():
        generation = _write_generation(root, read_pair(cert, key))
        _point(root / CURRENT, generation.name)
        _sync_dir(root)
        _link(key, root / CURRENT / KEY_NAME)  # same bytes as before: still the old pair
        _link(cert, root / CURRENT / CERT_NAME)
    elif cert.exists() or cert.is_symlink():
        cert.unlink()  # a certificate without its key is no pair; never pair it with a new key
        _sync_dir(cert.parent)


def _links_to(path: Path, target: Path) -> bool:
    return path.is_symlink() and os.readlink(path) == os.path.relpath(target, path.parent)


def _write_generation(root: Path, pair: Pair) -> Path:
    generation = root / f"g-{time.time_ns():x}-{secrets.token_hex(3)}"
    generation.mkdir(mode=0o755)
    _write_file(generation / KEY_NAME, pair.key_pem, KEY_MODE)
    _write_file(generation / CERT_NAME, pair.cert_pem, 0o644)
    _sync_dir(generation)
    _sync_dir(root)
    return generation


def _write_file(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)  # the umask must not widen or narrow a key's permissions
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def _point(link: Path, target: str) -> None:
    """Atomically (re)point a symlink: make it under a temporary name, then rename over."""
    tmp = link.with_name(f".{link.name}.{secrets.token_hex(4)}.tmp")
    os.symlink(target, tmp)
    os.replace(tmp, link)


def _link(path: Path, target: Path) -> None:
    """Make `path` a relative symlink to `target` (atomically replacing a file) unless it is."""
    if not _links_to(path, target):
        _point(path, os.path.relpath(target, path.parent))
    _sync_dir(path.parent)


def _target(link: Path) -> str | None:
    try:
        return os.readlink(link)
    except (FileNotFoundError, OSError):
        return None


def _bak(path: Path) -> Path:
    return path.with_name(path.name + ".bak")


def _prune(root: Path) -> None:
    """Delete generations that neither `current` nor `previous` names (after the commit)."""
    keep = {_target(root / CURRENT), _target(root / PREVIOUS)}
    for child in root.iterdir():
        if child.name.startswith("g-") and child.name not in keep:
            shutil.rmtree(child, ignore_errors=True)
        elif child.name.endswith(".tmp") and child.is_symlink():
            with contextlib.suppress(FileNotFoundError):
                child.unlink()


def _sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
