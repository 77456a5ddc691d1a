"""Open a sealed backup into a private folder and check it against its manifest.

Nothing of the archive is read before its GCM tag verifies (`sealed.unseal`). Then each member
must be a regular file the manifest names, once, with the size and SHA-256 it gives; the
database copy's figures must be the manifest's, and its audit chain intact.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from pkiforge.backup.manifest import (
    DATABASE,
    MAX_MANIFEST,
    NAME,
    Counts,
    Manifest,
    read_counts,
    safe_member,
)
from pkiforge.backup.sealed import Secret, unseal
from pkiforge.errors import IntegrityError, NotFound


@dataclass
class OpenedBackup:
    """A checked archive unpacked under `folder` (members at their archive paths)."""

    manifest: Manifest
    folder: Path
    problems: list[str] = field(default_factory=list)
    counts: Counts | None = None  # as read again from the database copy

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def database(self) -> Path:
        return self.folder / DATABASE


def open_backup(path: Path, secret: Secret, folder: Path) -> OpenedBackup:
    """Decrypt `path`, unpack it under `folder` (an empty private folder) and check it.

    Raises:
        NotFound: no such file. IntegrityError: it cannot be opened, or its manifest cannot be
        read (every other finding is in `problems`).
    """
    if not path.is_file():
        raise NotFound(f"backup {path} does not exist", field="backup")
    plain = folder / ".archive.tar"
    fd = os.open(plain, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w+b") as f:
            unseal(path, secret, f)
            f.seek(0)
            opened = _unpack(f, folder)
    finally:
        plain.unlink(missing_ok=True)
    _check_database(opened)
    return opened


def _unpack(f: object, folder: Path) -> OpenedBackup:
    with tarfile.open(fileobj=f, mode="r|") as tar:  # type: ignore[call-overload]
        first = tar.next()
        if first is None or first.name != NAME or not first.isfile() or first.size > MAX_MANIFEST:
            raise IntegrityError("the backup has no manifest first", field="backup")
        reader = tar.extractfile(first)
        assert reader is not None
        opened = OpenedBackup(Manifest.from_json(reader.read()), folder)
        seen: set[str] = set()
        while (member := tar.next()) is not None:  # iterating would yield the first again
            expected = opened.manifest.file(member.name)
            if expected is None or not member.isfile() or member.name in seen:
                opened.problems.append(f"{member.name!r}: not in the manifest, or twice")
                continue
            seen.add(member.name)
            source = tar.extractfile(member)
            assert source is not None and safe_member(member.name)
            target = folder / member.name
            _private_dirs(folder, target.parent)
            digest, size = hashlib.sha256(), 0
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                while chunk := source.read(1 << 20):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
            if size != expected.size or digest.hexdigest() != expected.sha256:
                opened.problems.append(f"{member.name}: does not match its SHA-256 in the manifest")
    for entry in opened.manifest.files:
        if entry.path not in seen:
            opened.problems.append(f"{entry.path}: named in the manifest, missing from the archive")
    return opened


def _private_dirs(folder: Path, parent: Path) -> None:
    """Make `parent` and the folders between `folder` and it, each 0700 (a data directory is
    nobody else's business; `mkdir(parents=True)` would give the upper ones the umask's mode)."""
    path = folder
    for part in parent.relative_to(folder).parts:
        path = path / part
        path.mkdir(mode=0o700, exist_ok=True)


def _check_database(opened: OpenedBackup) -> None:
    if not opened.database.is_file():
        return  # already a problem: missing
    counts, revision, chain = read_counts(opened.database)
    opened.counts = counts
    manifest = opened.manifest
    opened.problems.extend(f"audit chain: {p}" for p in chain)
    if revision != manifest.schema_revision:
        opened.problems.append(
            f"schema revision {revision} differs from the manifest's {manifest.schema_revision}"
        )
    if counts != manifest.counts:
        for name in ("certificates", "revoked", "cas", "crl_numbers", "audit_entries"):
            if getattr(counts, name) != getattr(manifest.counts, name):
                opened.problems.append(f"{name} in the database copy differs from the manifest")
        if counts.audit_head != manifest.counts.audit_head:
            opened.problems.append("the audit chain's head differs from the manifest")
