"""Helpers for the CA core tests: settings, a wired PKI, committed keys, write snapshots."""

from __future__ import annotations

import datetime as dt
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import func, select

from pkiforge.ca.hierarchy import InitOptions
from pkiforge.clock import FixedClock
from pkiforge.settings import CASettings, Settings, URLSettings
from pkiforge.store.tables import AuditRow, CARow, CertificateRow, CRLRow, RevocationRow
from pkiforge.wiring import Pki, build_pki
from tests.conftest import DATA

PASSPHRASE = b"test-passphrase-0123456789"
NOW = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.UTC)
TRUST_DOMAIN = "example.internal"
URLS = URLSettings(
    crl="http://pki.example.internal/crl/{issuer}.crl",
    ocsp="http://pki.example.internal/ocsp/{issuer}",
    ca_issuers="http://pki.example.internal/ca/{issuer}.crt",
)


def make_settings(
    home: Path,
    *,
    urls: URLSettings | None = URLS,
    sqlite_synchronous: Literal["normal", "full"] = "full",
    **ca: Any,
) -> Settings:
    """Fast test settings: P-256 CAs, the cheapest allowed scrypt cost."""
    ca_values: dict[str, Any] = {
        "trust_domain": TRUST_DOMAIN,
        "root_key_type": "p256",
        "intermediate_key_type": "p256",
        "kdf_log2_n": 14,
        **ca,
    }
    return Settings(
        home=home,
        database_url=f"sqlite:///{home / 'pkiforge.db'}",
        ca=CASettings(**ca_values),
        urls=urls or URLSettings(),
        sqlite_synchronous=sqlite_synchronous,
    )


def make_pki(
    home: Path,
    *,
    passphrase: bytes = PASSPHRASE,
    clock: FixedClock | None = None,
    init: bool = True,
    options: InitOptions | None = None,
    **settings: Any,
) -> Pki:
    """Wire a PKI in `home`; initialise root + `services` unless `init=False`."""
    home.mkdir(parents=True, exist_ok=True)
    pki = build_pki(make_settings(home, **settings), passphrase, clock or FixedClock(NOW))
    if init:
        pki.hierarchy.initialize(options or InitOptions())
    return pki


def leaf_key(name: str) -> Any:
    """A committed private key from tests/data/key-<name>.pem."""
    return serialization.load_pem_private_key((DATA / f"key-{name}.pem").read_bytes(), None)


def csr_bytes(name: str) -> bytes:
    """A committed CSR from tests/data/csr-<name>.pem."""
    return (DATA / f"csr-{name}.pem").read_bytes()


@dataclass(frozen=True)
class Snapshot:
    """What a refused request must leave unchanged."""

    rows: dict[str, int]
    files: frozenset[str]


def snapshot(pki: Pki) -> Snapshot:
    """Row counts of every table and the files under the data directory."""
    rows = {}
    with pki.store.engine.connect() as conn:
        for table in (CARow, CertificateRow, RevocationRow, CRLRow, AuditRow):
            count = conn.execute(select(func.count()).select_from(table)).scalar_one()
            rows[table.__tablename__] = count
    home = pki.settings.home
    files = frozenset(
        str(p.relative_to(home))
        for p in home.rglob("*")
        if p.is_file() and not p.name.startswith("pkiforge.db")
    )
    return Snapshot(rows, files)


def pem(obj: x509.Certificate | x509.CertificateRevocationList) -> bytes:
    return obj.public_bytes(Encoding.PEM)


def write(path: Path, *objs: x509.Certificate | x509.CertificateRevocationList) -> Path:
    path.write_bytes(b"".join(pem(o) for o in objs))
    return path


def openssl(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the real openssl CLI."""
    return subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=60)


def attime(when: dt.datetime = NOW) -> str:
    """The `-attime` value for openssl verify: our FixedClock's time plus an hour."""
    return str(int((when + dt.timedelta(hours=1)).timestamp()))
