"""`pkiforge backup create|verify|restore`: sealed backups of the database and the home."""

from __future__ import annotations

import datetime as dt
import os
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer

from pkiforge.backup.aftercare import DEFAULT_MARGIN
from pkiforge.backup.archive import OpenedBackup, open_backup
from pkiforge.backup.create import BackupOptions, create_backup
from pkiforge.backup.manifest import Manifest
from pkiforge.backup.restore import RestoreOptions, RestoreReport, restore_backup
from pkiforge.backup.sealed import DEFAULT_LOG2_N, Secret, parse_key_file
from pkiforge.backup.snapshot import Reference
from pkiforge.cli.files import check_folders, read_input
from pkiforge.cli.output import INTEGRITY, emit_json, err, fields, out, table
from pkiforge.cli.state import CliState
from pkiforge.errors import InvalidInput
from pkiforge.passphrase import read_secret
from pkiforge.settings import Settings

app = typer.Typer(help="Backups: create, verify, restore.", no_args_is_help=True)

ENV = "PKIFORGE_BACKUP_PASSPHRASE"
RECOVERY_DOC = "docs/operations.md, Backup and recovery"

PassphraseFile = Annotated[
    Path | None,
    typer.Option(
        "--backup-passphrase-file",
        help=f"File holding the backup passphrase (else {ENV}, else a prompt).",
    ),
]
KeyFile = Annotated[
    Path | None,
    typer.Option("--backup-key-file", help="File holding a 32-byte key as 64 hex digits, instead."),
]
JsonOut = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _secret(passphrase_file: Path | None, key_file: Path | None, *, confirm: bool) -> Secret:
    """The backup's key or passphrase: file, environment, or prompt; never an argument."""
    if passphrase_file is not None and key_file is not None:
        raise InvalidInput(
            "give --backup-passphrase-file or --backup-key-file, not both", field="backup_key_file"
        )
    if key_file is not None:
        return Secret(key=parse_key_file(read_input(key_file, "key file", "backup_key_file")))
    if passphrase_file is not None:
        return Secret(passphrase=read_secret(passphrase_file))
    if os.environ.get(ENV):
        return Secret(passphrase=os.environ[ENV].encode())
    if sys.stdin.isatty():
        import getpass

        value = getpass.getpass("Backup passphrase: ").encode()
        if confirm and getpass.getpass("Again: ").encode() != value:
            raise InvalidInput("the two passphrases differ", field="backup_passphrase")
        return Secret(passphrase=value)
    raise InvalidInput(
        f"no backup passphrase: pass --backup-passphrase-file or --backup-key-file, set {ENV}, "
        "or run on a terminal",
        field="backup_passphrase",
    )


@app.command("create")
def create(
    ctx: typer.Context,
    out_file: Annotated[Path, typer.Option("--out", help="The archive to write (a new file).")],
    passphrase_file: PassphraseFile = None,
    key_file: KeyFile = None,
    include_ca_passphrase: Annotated[
        bool,
        typer.Option(
            "--include-ca-passphrase",
            help="Put the CA passphrase in the archive too (then the backup's passphrase "
            "alone opens the CA keys).",
        ),
    ] = False,
    kdf_log2_n: Annotated[
        int, typer.Option(help="scrypt cost of the backup passphrase, as log2 N (14-20).")
    ] = DEFAULT_LOG2_N,
    json_out: JsonOut = False,
) -> None:
    """A consistent, encrypted copy of the database and the home, taken while it runs."""
    state: CliState = ctx.obj
    check_folders({"--out": out_file})
    secret = _secret(passphrase_file, key_file, confirm=True)
    settings = state.settings
    options = BackupOptions(
        database_url=settings.effective_database_url,
        home=state.home,
        secret=secret,
        ca_passphrase=state.passphrase() if include_ca_passphrase else None,
        log2_n=kdf_log2_n,
        references=settings_references(settings),
    )
    manifest = create_backup(out_file, options)
    if json_out:
        emit_json({"file": str(out_file), "manifest": _manifest_data(manifest)})
        for left_out in manifest.files_left_out:
            err.print(f"warning: not in the backup (keep it yourself): {left_out}")
        return
    out.print(f"Backup written to {out_file}")
    _show_manifest(manifest)
    if manifest.keys_outside_home:
        err.print(
            "not in the backup (keep them yourself): " + ", ".join(manifest.keys_outside_home)
        )
    for left_out in manifest.files_left_out:
        err.print(f"warning: not in the backup (keep it yourself): {left_out}")
    if not manifest.includes_ca_passphrase:
        err.print("The CA passphrase is not in the backup: keep it apart from the backup.")


@app.command("verify")
def verify(
    ctx: typer.Context,
    backup: Annotated[Path, typer.Argument(help="The archive to check.")],
    passphrase_file: PassphraseFile = None,
    key_file: KeyFile = None,
    json_out: JsonOut = False,
) -> None:
    """Decrypt and check every file and figure of a backup without restoring it (exit 8 if
    anything is wrong)."""
    secret = _secret(passphrase_file, key_file, confirm=False)
    with tempfile.TemporaryDirectory(prefix="pkiforge-verify-") as tmp:  # private: 0700
        opened = open_backup(backup, secret, Path(tmp))
    if json_out:
        emit_json(
            {
                "ok": opened.ok,
                "problems": opened.problems,
                "manifest": _manifest_data(opened.manifest),
            }
        )
    else:
        _show_opened(opened)
    if not opened.ok:
        raise typer.Exit(INTEGRITY)


@app.command("restore")
def restore(
    ctx: typer.Context,
    backup: Annotated[Path, typer.Argument(help="The archive to restore.")],
    home: Annotated[
        Path | None,
        typer.Option("--home", help="The new data directory (empty or absent)."),
    ] = None,
    passphrase_file: PassphraseFile = None,
    key_file: KeyFile = None,
    crl_number_margin: Annotated[
        int,
        typer.Option(
            min=1,
            help="Move each issuer's CRL number at least this far past the backup's.",
        ),
    ] = DEFAULT_MARGIN,
    crl_number_floor: Annotated[
        int,
        typer.Option(min=0, help="The highest CRL number published: new ones go past it."),
    ] = 0,
    json_out: JsonOut = False,
) -> None:
    """Restore a backup into a new data directory (or an empty PostgreSQL database)."""
    state: CliState = ctx.obj
    secret = _secret(passphrase_file, key_file, confirm=False)
    report = restore_backup(
        backup,
        RestoreOptions(
            home=home or state.home,
            secret=secret,
            database_url=state.database_url,
            crl_number_margin=crl_number_margin,
            crl_number_floor=crl_number_floor,
        ),
    )
    if json_out:
        emit_json(_restore_data(report))
        return
    _show_restore(report)


def settings_references(settings: Settings) -> tuple[Reference, ...]:
    """The files the settings name, which a restored home needs to serve: each webhook's
    `secret_file`."""
    return tuple(
        Reference(f"webhook {hook.name!r} secret_file", hook.secret_file)
        for hook in settings.notifications.webhooks
        if hook.secret_file is not None
    )


def _manifest_data(manifest: Manifest) -> dict[str, Any]:
    data = asdict(manifest)
    data["created_at"] = manifest.created_at.isoformat()
    return data


def _show_manifest(manifest: Manifest) -> None:
    counts = manifest.counts
    head = counts.audit_head
    fields(
        [
            ("created", manifest.created_at.isoformat(timespec="seconds")),
            ("pkiforge", manifest.pkiforge_version),
            ("database", f"{manifest.database_backend}, schema {manifest.schema_revision}"),
            ("certificates", f"{counts.certificates} ({counts.revoked} revoked)"),
            ("CAs", counts.cas),
            ("CRL numbers", ", ".join(f"{k} {v}" for k, v in counts.crl_numbers.items())),
            ("audit head", f"{head['seq']} {head['hash'][:16]}…" if head else "-"),
            ("CA passphrase", "included" if manifest.includes_ca_passphrase else "not included"),
        ]
    )


def _show_opened(opened: OpenedBackup) -> None:
    _show_manifest(opened.manifest)
    bad = {p.split(":", 1)[0] for p in opened.problems}
    table(
        None,
        ["file", "bytes", "mode", "sha256", "check"],
        [
            [f.path, f.size, oct(f.mode), f.sha256[:16] + "…", "bad" if f.path in bad else "ok"]
            for f in opened.manifest.files
        ],
        whole=("file",),
    )
    if opened.ok:
        out.print("backup intact: every file matches the manifest, the audit chain is whole")
        return
    for problem in opened.problems:
        err.print(f"[red]problem:[/red] {problem}")
    err.print(f"backup does not check out: {len(opened.problems)} problem(s)")


def _restore_data(report: RestoreReport) -> dict[str, Any]:
    after = report.aftercare
    return {
        "home": str(report.home),
        "database": report.database,
        "backup_created_at": after.backup_created_at.isoformat(),
        "restored_at": after.restored_at.isoformat(),
        "gap_seconds": int(after.gap.total_seconds()),
        "certificates": report.manifest.counts.certificates,
        "next_crl_numbers": {c.issuer: c.next_number for c in after.crls},
        "config_names_other_database": report.config_names_other_database,
        "keys_outside_home": report.manifest.keys_outside_home,
        "files_left_out": report.manifest.files_left_out,
    }


def _show_restore(report: RestoreReport) -> None:
    after = report.aftercare
    out.print(f"Restored into {report.home} ({report.database})")
    fields(
        [
            ("backup taken", after.backup_created_at.isoformat(timespec="seconds")),
            ("restored at", after.restored_at.isoformat(timespec="seconds")),
            ("certificates", report.manifest.counts.certificates),
            ("next CRL numbers", ", ".join(f"{c.issuer} {c.next_number}" for c in after.crls)),
        ]
    )
    gap = dt.timedelta(seconds=int(after.gap.total_seconds()))
    err.print(
        f"Certificates issued, revocations and CRLs after "
        f"{after.backup_created_at.isoformat(timespec='seconds')} (a gap of {gap}) are "
        f"unknown to the restored store; the gap is in the audit trail. How to find them "
        f"again: {RECOVERY_DOC}."
    )
    if report.manifest.keys_outside_home:
        err.print(
            "CA keys kept outside the home are not in the backup: "
            + ", ".join(report.manifest.keys_outside_home)
        )
    for left_out in report.manifest.files_left_out:
        err.print(f"not in the backup, put it back before serving: {left_out}")
    if report.config_names_other_database:
        err.print(
            "config.yaml names another database than the one restored into: set "
            "PKIFORGE_DATABASE_URL (or edit database_url) before serving."
        )
