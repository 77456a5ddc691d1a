"""`backup create`: copy the database, then the home's files, into one sealed tar archive.

The database is copied first and the files after: a CA key is written before the row that names
it, so every key the copied database names is in the home by the time the files are read.
"""

from __future__ import annotations

import hashlib
import io
import os
import sqlite3
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pkiforge import __version__
from pkiforge.backup.manifest import DATABASE, HOME, NAME, FileEntry, Manifest, read_counts
from pkiforge.backup.sealed import DEFAULT_LOG2_N, SealingWriter, Secret
from pkiforge.backup.snapshot import (
    PASSPHRASE_FILE,
    Reference,
    home_files,
    referenced_files,
    snapshot_database,
)
from pkiforge.clock import Clock, SystemClock
from pkiforge.errors import Conflict, IntegrityError


@dataclass(frozen=True)
class BackupOptions:
    database_url: str
    home: Path
    secret: Secret
    # the CA passphrase to put in the archive (only on explicit request; None: left out)
    ca_passphrase: bytes | None = None
    log2_n: int = DEFAULT_LOG2_N
    # files the settings name (webhook secrets): kept when inside the home, listed if not
    references: tuple[Reference, ...] = ()


def create_backup(out: Path, options: BackupOptions, clock: Clock | None = None) -> Manifest:
    """Write the sealed archive to `out` (a new file) and return its manifest.

    Raises:
        Conflict: `out` exists. NotFound / StoreUnavailable: no database to copy.
        IntegrityError: the database's audit chain is broken (a backup would hide when).
    """
    if out.exists():
        raise Conflict(f"{out} already exists; choose a new file name", field="out")
    now = (clock or SystemClock()).now()
    with tempfile.TemporaryDirectory(dir=out.absolute().parent, prefix=".pkiforge-backup-") as tmp:
        database = Path(tmp) / "pkiforge.db"
        backend = snapshot_database(options.database_url, database)
        counts, revision, problems = read_counts(database)
        if problems:
            raise IntegrityError(
                f"the audit chain is broken ({problems[0]}); run `pkiforge audit verify`",
                field="audit",
            )
        files, outside = home_files(
            options.home, _key_refs(database), passphrase=options.ca_passphrase is not None
        )
        referenced, left_out = referenced_files(options.home, list(options.references))
        contents = {HOME + f.relative: f.source.read_bytes() for f in [*files, *referenced]}
        secret_names = {HOME + f.relative for f in referenced}
        if options.ca_passphrase is not None:
            contents[HOME + PASSPHRASE_FILE] = options.ca_passphrase.strip() + b"\n"
        entries = [_entry(DATABASE, _sha256_file(database), database.stat().st_size, 0o600)]
        for name, data in sorted(contents.items()):
            private = name in secret_names or name.startswith(
                (HOME + "ca/", HOME + "secrets/", HOME + "server/tls.key")
            )
            mode = 0o600 if private else 0o644
            entries.append(_entry(name, hashlib.sha256(data).hexdigest(), len(data), mode))
        manifest = Manifest(
            pkiforge_version=__version__,
            created_at=now,
            schema_revision=revision,
            database_backend=backend,
            counts=counts,
            files=entries,
            includes_ca_passphrase=options.ca_passphrase is not None,
            keys_outside_home=outside,
            files_left_out=left_out,
        )
        _write(out, options, manifest, database, contents)
    return manifest


def _entry(name: str, sha256: str, size: int, mode: int) -> FileEntry:
    return FileEntry(path=name, sha256=sha256, size=size, mode=mode)


def _key_refs(database: Path) -> list[tuple[str, str | None]]:
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        return [(r[0], r[1]) for r in conn.execute("SELECT name, key_ref FROM cas ORDER BY name")]
    finally:
        conn.close()


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _write(
    out: Path,
    options: BackupOptions,
    manifest: Manifest,
    database: Path,
    contents: dict[str, bytes],
) -> None:
    """Seal the tar into `<out>.partial` (0600), sync it, and rename it to `out`."""
    partial = out.with_name(out.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            sealer = SealingWriter(f, options.secret, log2_n=options.log2_n)
            stamp = int(manifest.created_at.timestamp())
            with tarfile.open(fileobj=sealer, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
                _add(tar, NAME, io.BytesIO(manifest.to_json()), len(manifest.to_json()), stamp)
                with database.open("rb") as db:
                    _add(tar, DATABASE, db, database.stat().st_size, stamp)
                for name, data in sorted(contents.items()):
                    _add(tar, name, io.BytesIO(data), len(data), stamp)
            sealer.close()
            f.flush()
            os.fsync(f.fileno())
        os.rename(partial, out)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def _add(tar: tarfile.TarFile, name: str, data: io.IOBase | object, size: int, stamp: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o600, stamp
    tar.addfile(info, data)  # type: ignore[arg-type]
