"""`pkiforge crl ...`: sign and inspect CRLs."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from pkiforge.ca.crl import reason_name
from pkiforge.ca.models import CRLRecord, format_serial
from pkiforge.cli.files import check_writable, write_output
from pkiforge.cli.output import emit_json, fields, out, table, when
from pkiforge.cli.state import CliState

app = typer.Typer(help="Certificate revocation lists.", no_args_is_help=True)

IssuerOpt = Annotated[str, typer.Option("--issuer", help="The CA whose CRL this is.")]


class CRLFormat(StrEnum):
    pem = "pem"
    der = "der"


DER_SUFFIXES = (".der", ".crl")


def _chosen(fmt: CRLFormat | None, out_file: Path | None) -> CRLFormat:
    """The format asked for; without --format, DER for a `.der`/`.crl` file, else PEM."""
    if fmt is not None:
        return fmt
    if out_file is not None and out_file.suffix in DER_SUFFIXES:
        return CRLFormat.der
    return CRLFormat.pem


def _encode(record: CRLRecord, fmt: CRLFormat) -> bytes:
    if fmt is CRLFormat.der:
        return record.der
    return x509.load_der_x509_crl(record.der).public_bytes(Encoding.PEM)


def _describe(record: CRLRecord) -> dict[str, object]:
    crl = x509.load_der_x509_crl(record.der)
    entries = []
    for entry in crl:
        try:
            reason = reason_name(
                entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
            )
        except x509.ExtensionNotFound:
            reason = "unspecified"
        entries.append(
            {
                "serial": format_serial(entry.serial_number),
                "revoked_at": entry.revocation_date_utc,
                "reason": reason,
            }
        )
    info: dict[str, object] = {
        "issuer": record.issuer,
        "crl_number": record.number,
        "this_update": record.this_update,
        "next_update": record.next_update,
        "entries": entries,
    }
    if record.base_number is not None:
        info["delta_of"] = record.base_number  # RFC 5280 §5.2.4 delta CRL indicator
    return info


@app.command("generate")
def generate(
    ctx: typer.Context,
    issuer: IssuerOpt,
    out_file: Annotated[Path | None, typer.Option("--out", help="Write the CRL here.")] = None,
    fmt: Annotated[
        CRLFormat | None,
        typer.Option(
            "--format", help="pem or der (default: der if --out ends in .der or .crl, else pem)"
        ),
    ] = None,
    root_key: Annotated[
        Path | None, typer.Option("--root-key", help="Offline root key, to sign the root's CRL.")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace --out.")] = False,
    delta: Annotated[
        bool,
        typer.Option(
            "--delta",
            help="A delta CRL: the revocations since the newest full CRL (needs crl.delta).",
        ),
    ] = False,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Sign the next CRL of an issuer (all its unexpired revoked certificates)."""
    state: CliState = ctx.obj
    check_writable([out_file], force)
    sign = state.pki.revocation.generate_delta if delta else state.pki.revocation.generate_crl
    record = sign(issuer, key_ref=str(root_key.resolve()) if root_key else None)
    chosen = _chosen(fmt, out_file)
    if out_file is not None:
        write_output(out_file, _encode(record, chosen))
    if json_out:
        emit_json(_describe(record))
    elif out_file is None:
        write_output(Path("-"), _encode(record, chosen))
    else:
        count = len(x509.load_der_x509_crl(record.der))
        out.print(
            f"{'Delta CRL' if delta else 'CRL'} #{record.number} of {issuer} with {count} "
            f"entries written to {out_file} "
            f"(next update {when(record.next_update)})"
        )


@app.command("show")
def show(
    ctx: typer.Context, issuer: IssuerOpt, json_out: Annotated[bool, typer.Option("--json")] = False
) -> None:
    """Show the newest CRL of an issuer."""
    info = _describe(ctx.obj.pki.revocation.latest_crl(issuer))
    if json_out:
        emit_json(info)
        return
    entries = info.pop("entries")
    fields(list(info.items()))
    assert isinstance(entries, list)
    table(
        None,
        ["serial", "revoked at", "reason"],
        [[e["serial"], when(e["revoked_at"]), e["reason"]] for e in entries],
        whole={"serial"},
    )
