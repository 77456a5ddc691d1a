"""Helpers for the backup tests: a source PKI with history, and backup/restore with its clock."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509

from pkiforge.actor import OPERATOR
from pkiforge.backup.create import BackupOptions, create_backup
from pkiforge.backup.manifest import Manifest
from pkiforge.backup.restore import RestoreOptions, RestoreReport, restore_backup
from pkiforge.backup.sealed import Secret
from pkiforge.ca.authorize import operator_rules
from pkiforge.ca.issue_request import IssueRequest
from pkiforge.ca.models import CertificateRecord
from pkiforge.clock import FixedClock
from pkiforge.wiring import Pki, build_pki
from tests.ca.helpers import PASSPHRASE, make_settings

SECRET = Secret(passphrase=b"backup-test-passphrase-0123")


def issue(pki: Pki, cn: str) -> CertificateRecord:
    request = IssueRequest(cn, service_id="api", profile="server", key_type="p256")
    return pki.certificates.issuance.issue(request, OPERATOR, operator_rules(request)).record


def backup(pki: Pki, out: Path, **options: object) -> Manifest:
    settings = pki.settings
    opts = BackupOptions(
        database_url=settings.effective_database_url,
        home=settings.home,
        secret=SECRET,
        log2_n=14,
        **options,  # type: ignore[arg-type]
    )
    return create_backup(out, opts, pki.ctx.clock)


def restore(archive: Path, home: Path, at: dt.datetime, **options: object) -> RestoreReport:
    opts = RestoreOptions(home=home, secret=SECRET, **options)  # type: ignore[arg-type]
    return restore_backup(archive, opts, FixedClock(at))


def open_restored(home: Path, at: dt.datetime) -> Pki:
    return build_pki(make_settings(home), PASSPHRASE, FixedClock(at))


def crl_number(crl_der: bytes) -> int:
    crl = x509.load_der_x509_crl(crl_der)
    return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
