"""What a backup holds: every file with its SHA-256, and the figures of the database copy.

The manifest is the archive's first member. The figures (certificates, CAs, the highest CRL
number of each issuer, the audit chain's head) are read from the database copy itself when the
backup is made, and read again from it by `backup verify` and `backup restore`.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, inspect, select, text
from sqlalchemy.exc import SQLAlchemyError

from pkiforge.ca.audit import verify_chain
from pkiforge.errors import IntegrityError
from pkiforge.store.db import SqlTransaction
from pkiforge.store.tables import AuditRow, CARow, CertificateRow, CRLRow, RevocationRow

FORMAT = 1
NAME = "manifest.json"
DATABASE = "database/pkiforge.db"  # always a SQLite file, whatever the source database
HOME = "home/"  # files of the data directory, by their path in it
MAX_MANIFEST = 16 * 1024 * 1024
_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def safe_member(name: str) -> bool:
    """A relative path of plain parts: nothing absolute, no `..`, no hidden or odd names."""
    parts = name.split("/")
    return bool(parts) and all(_PART.match(p) and p != ".." for p in parts)


@dataclass(frozen=True)
class FileEntry:
    path: str  # the member name in the archive
    sha256: str
    size: int
    mode: int


@dataclass(frozen=True)
class Counts:
    certificates: int
    revoked: int
    cas: int
    crl_numbers: dict[str, int]  # per issuer: the highest CRL number it has used
    audit_entries: int
    audit_head: dict[str, Any] | None  # {"seq": ..., "hash": ...}


@dataclass(frozen=True)
class Manifest:
    pkiforge_version: str
    created_at: dt.datetime
    schema_revision: str | None
    database_backend: str  # where the copy came from: sqlite or postgresql
    counts: Counts
    files: list[FileEntry]
    includes_ca_passphrase: bool = False
    # CA keys not in the archive: kept offline (`name (offline)`) or outside the home (path)
    keys_outside_home: list[str] = field(default_factory=list)
    # files the settings name that are not in the archive (outside the home, missing), each
    # with its setting: `webhook 'ops' secret_file: /etc/x (outside the home)`
    files_left_out: list[str] = field(default_factory=list)
    format: int = FORMAT

    def to_json(self) -> bytes:
        data = asdict(self)
        data["created_at"] = self.created_at.isoformat()
        return json.dumps(data, indent=2, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Manifest:
        """Raises IntegrityError: not a manifest this version reads."""
        try:
            data = json.loads(raw)
            if data.get("format") != FORMAT:
                raise ValueError("format")
            files = [FileEntry(**f) for f in data.pop("files")]
            counts = Counts(**data.pop("counts"))
            created = dt.datetime.fromisoformat(data.pop("created_at"))
            if created.tzinfo is None:
                raise ValueError("naive time")
            manifest = cls(**data, created_at=created, counts=counts, files=files)
        except (ValueError, TypeError, KeyError, AttributeError):
            raise IntegrityError(
                "the backup's manifest is not one this version reads", field="backup"
            ) from None
        names = [f.path for f in manifest.files]
        if len(set(names)) != len(names) or not all(safe_member(n) for n in names):
            raise IntegrityError("the backup's manifest names unsafe files", field="backup")
        return manifest

    def file(self, path: str) -> FileEntry | None:
        return next((f for f in self.files if f.path == path), None)


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path.resolve()}"


def read_counts(database: Path) -> tuple[Counts, str | None, list[str]]:
    """The figures of a SQLite copy, its schema revision, and what its audit chain shows
    wrong (nothing when it is intact). Reads through a plain engine: the copy's journal mode
    and files stay as they are."""
    engine = create_engine(sqlite_url(database))
    try:
        with engine.connect() as c, c.begin():
            revision = None
            if inspect(c).has_table("alembic_version"):
                revision = c.execute(text("SELECT version_num FROM alembic_version")).scalar()
            certificates = c.execute(select(func.count()).select_from(CertificateRow)).scalar()
            revoked = c.execute(select(func.count()).select_from(RevocationRow)).scalar()
            cas = c.execute(select(CARow.name, CARow.crl_number)).all()
            published = dict(
                c.execute(
                    select(CRLRow.issuer, func.max(CRLRow.number)).group_by(CRLRow.issuer)
                ).all()
            )
            entries = c.execute(select(func.count()).select_from(AuditRow)).scalar()
            tx = SqlTransaction(c)
            try:
                report = verify_chain(tx.audit.iterate())
            finally:
                tx.close()
    except SQLAlchemyError:
        raise IntegrityError(
            "the backup's database copy cannot be read as a pkiforge database", field="backup"
        ) from None
    finally:
        engine.dispose()
    numbers = {name: max(number or 0, published.get(name) or 0) for name, number in cas}
    head = {"seq": report.head.seq, "hash": report.head.hash} if report.head else None
    counts = Counts(
        certificates=int(certificates or 0),
        revoked=int(revoked or 0),
        cas=len(cas),
        crl_numbers=dict(sorted(numbers.items())),
        audit_entries=int(entries or 0),
        audit_head=head,
    )
    return counts, revision, report.problems
