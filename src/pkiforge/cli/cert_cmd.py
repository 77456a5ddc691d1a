"""`pkiforge cert ...`: issue, list, show, renew, revoke, export."""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import replace
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, pkcs12

from pkiforge.ca.authorize import operator_rules
from pkiforge.ca.crl import parse_reason, reason_name
from pkiforge.ca.issue_request import IssueRequest, parse_names
from pkiforge.ca.models import OPERATOR, CertificateQuery, CertificateRecord, CertStatus
from pkiforge.ca.operator_certs import MIN_SERIAL_PREFIX
from pkiforge.ca.paging import decode_cursor, encode_cursor, order_of
from pkiforge.cli.files import check_writable, read_input, write_output
from pkiforge.cli.output import emit_json, err, fields, out, table, when
from pkiforge.cli.state import CliState
from pkiforge.cli.usage import exclusive, usage_error
from pkiforge.clock import utc_input
from pkiforge.durations import format_duration, parse_duration
from pkiforge.errors import InvalidInput
from pkiforge.x509.csr import load_csr
from pkiforge.x509.keys import describe_key, parse_key_type, private_key_pem

app = typer.Typer(help="Leaf certificates.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Replace existing output files.")]
OutOpt = Annotated[Path | None, typer.Option("--out", help="Write the certificate PEM here.")]
SerialArg = Annotated[
    str,
    typer.Argument(
        help=f"Serial in hex, or a unique prefix of it ({MIN_SERIAL_PREFIX}+ digits).",
        show_default=False,
    ),
]
P12_ENV = "PKIFORGE_P12_PASSPHRASE"


class ExportFormat(StrEnum):
    pem = "pem"
    der = "der"
    chain = "chain"
    pkcs12 = "pkcs12"


def _serial(state: CliState, text: str) -> int:
    """A whole serial or a unique prefix of one (`OperatorCertificates.resolve_serial`)."""
    return state.pki.certificates.resolve_serial(text)


def _validity(text: str | None) -> dt.timedelta | None:
    if text is None:
        return None
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise InvalidInput(str(exc), field="validity") from None


def record_json(state: CliState, r: CertificateRecord) -> dict[str, object]:
    now = state.pki.ctx.clock.now()
    rev = r.revocation
    return {
        "serial": r.serial_hex,
        "common_name": r.common_name,
        "names": list(r.names),
        "service_id": r.service_id,
        "issuer": r.issuer,
        "profile": r.profile,
        "status": r.state(now).value,
        "not_before": r.not_before,
        "not_after": r.not_after,
        "fingerprint_sha256": r.fingerprint,
        "key": describe_key(r.certificate.public_key()) if r.certificate else None,
        "server_generated_key": r.server_generated_key,
        "renewed_from": format(r.renewed_from, "x") if r.renewed_from is not None else None,
        "metadata": dict(r.metadata),
        "revocation": None
        if rev is None
        else {
            "reason": reason_name(rev.reason),
            "revoked_at": rev.revoked_at,
            "invalidity_date": rev.invalidity_date,
            "revoked_by": rev.revoked_by,
        },
    }


def _show(state: CliState, record: CertificateRecord, json_out: bool) -> None:
    data = record_json(state, record)
    if json_out:
        emit_json(data)
        return
    rev = data.pop("revocation")
    data["names"] = ", ".join(record.names)
    # one line of JSON (`fields` prints it as is, brackets included)
    data["metadata"] = (
        json.dumps(record.metadata, ensure_ascii=False, sort_keys=True) if record.metadata else None
    )
    pairs = list(data.items())
    if isinstance(rev, dict):
        pairs += [(f"revocation {k}", v) for k, v in rev.items()]
    fields(pairs)


def issue_request(
    csr: bytes | None,
    *,
    cn: str | None = None,
    san: list[str] | None = None,
    service: str | None = None,
    profile: str | None = None,  # None: the default profile, as the API's requests
    issuer: str | None = None,
    validity: str | None = None,
    key_type: str | None = None,
) -> IssueRequest:
    """`cert issue`'s options as the domain value `Issuance.issue` takes: a CSR, or a key of
    `key_type` (default p256) made here.

    Raises:
        InvalidCSR, InvalidName, PolicyViolation, InvalidInput: a malformed option.
    """
    return IssueRequest(
        common_name=cn,
        names=parse_names(san or []),
        service_id=service,
        profile=profile,
        issuer=issuer,
        validity=_validity(validity),
        csr=load_csr(csr) if csr is not None else None,
        key_type=parse_key_type(key_type or "p256") if csr is None else None,
    )


@app.command("issue")
def issue(
    ctx: typer.Context,
    csr: Annotated[
        Path | None, typer.Option(help="CSR file (PEM or DER); the key stays with the service.")
    ] = None,
    cn: Annotated[str | None, typer.Option("--cn", help="Common name (DNS name or IP).")] = None,
    san: Annotated[
        list[str] | None, typer.Option("--san", help="DNS:name, IP:addr or URI:uri; repeatable.")
    ] = None,
    service: Annotated[
        str | None,
        typer.Option(help="Service id for spiffe://<trust-domain>/<id> (default: the CN)."),
    ] = None,
    profile: Annotated[
        str | None, typer.Option(help="server, client or service (default: service).")
    ] = None,
    issuer: Annotated[str | None, typer.Option(help="Issuing intermediate.")] = None,
    validity: Annotated[str | None, typer.Option(help="e.g. 90d (default: profile's).")] = None,
    key_type: Annotated[
        str | None,
        typer.Option(
            help="With --cn: p256 (default), p384, ed25519, rsa2048, rsa3072, rsa4096.",
            show_default=False,
        ),
    ] = None,
    key_out: Annotated[
        Path | None,
        typer.Option(help="With --cn: make the key here and write it to this file (0600)."),
    ] = None,
    out_file: OutOpt = None,
    chain: Annotated[bool, typer.Option(help="Append the issuer chain to --out.")] = False,
    force: ForceOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Issue a certificate from a CSR, or with a key made here (--cn ... --key-out)."""
    state: CliState = ctx.obj
    # a CSR brings its own key and names; these three describe a key made here
    exclusive(ctx, csr=csr, cn=cn)
    exclusive(ctx, csr=csr, key_out=key_out)
    exclusive(ctx, csr=csr, key_type=key_type)
    if csr is None and cn is None:
        raise usage_error("give either --csr FILE, or --cn NAME with --key-out FILE", ctx)
    if csr is None and key_out is None:
        raise usage_error("--cn needs --key-out FILE, where the key made here is written", ctx)
    pki = state.pki
    check_writable([key_out, out_file], force)
    request = issue_request(
        read_input(csr, "CSR", "csr") if csr is not None else None,
        cn=cn,
        san=san or [],
        service=service,
        profile=profile,
        issuer=issuer,
        validity=validity,
        key_type=key_type,
    )
    issued = pki.certificates.issuance.issue(request, OPERATOR, operator_rules(request))
    record, key = issued.record, issued.key
    if key is not None and key_out is not None:
        write_output(key_out, private_key_pem(key), private=True)
    pem = _pem_out(state, record, chain)
    if out_file is not None:
        write_output(out_file, pem)
    if json_out:
        emit_json(record_json(state, record))
    elif out_file is None:
        write_output(Path("-"), pem)
    else:
        out.print(
            f"Issued {record.serial_hex} for {record.common_name} "
            f"(service {record.service_id}, expires {when(record.not_after)})"
        )


def _pem_out(state: CliState, record: CertificateRecord, with_chain: bool) -> bytes:
    assert record.certificate is not None
    pem = record.certificate.public_bytes(Encoding.PEM)
    if with_chain:
        pem += b"".join(
            c.public_bytes(Encoding.PEM) for c in state.pki.hierarchy.chain(record.issuer)
        )
    return pem


@app.command("list")
def list_certs(
    ctx: typer.Context,
    issuer: Annotated[str | None, typer.Option(help="Only this issuer.")] = None,
    status: Annotated[CertStatus | None, typer.Option(help="Only this status.")] = None,
    service: Annotated[str | None, typer.Option(help="Only this service id.")] = None,
    expiring_within: Annotated[
        str | None, typer.Option(help="Only active certificates expiring within e.g. 30d.")
    ] = None,
    archived: Annotated[
        bool,
        typer.Option(
            "--archived", help="Include certificates the tidy job archived (long expired)."
        ),
    ] = False,
    limit: Annotated[int, typer.Option(min=1, max=10000)] = 100,
    cursor: Annotated[
        str | None,
        typer.Option(help="Continue a listing: the cursor the previous page printed."),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Search the inventory, a page at a time (newest first; by expiry with --expiring-within
    or --status expired)."""
    state: CliState = ctx.obj
    now = state.pki.ctx.clock.now()
    window = None
    if expiring_within:
        try:
            window = now + parse_duration(expiring_within)
        except ValueError as exc:
            raise InvalidInput(str(exc), field="expiring_within") from None
        except OverflowError:
            raise InvalidInput(
                f"--expiring-within {expiring_within} reaches past the year 9999",
                field="expiring_within",
            ) from None
    query = CertificateQuery(
        issuer=issuer,
        status=status,
        service_id=service,
        expiring_before=window,
        now=now,
        include_archived=archived,
        limit=limit,
    )
    if cursor is not None:
        query = replace(query, after=decode_cursor(cursor, order_of(query)))
    page = state.pki.certificates.page(query)
    records = page.items
    if json_out:
        emit_json([record_json(state, r) for r in records])
    else:
        rows = [
            [
                r.serial_hex,  # whole, so that it can be pasted into show, revoke, renew ...
                r.common_name,
                r.service_id,
                r.issuer,
                r.profile,
                r.state(now).value,
                when(r.not_after),
            ]
            for r in records
        ]
        table(
            f"{len(records)} of {page.total.words()} certificates",
            ["serial", "common name", "service", "issuer", "profile", "status", "expires"],
            rows,
            whole={"serial"},
        )
    if page.next is not None:  # on stderr: --json output stays one JSON document
        err.print(f"next page: --cursor {encode_cursor(page.next)}", highlight=False)


@app.command("show")
def show(
    ctx: typer.Context,
    serial: SerialArg,
    json_out: JsonOpt = False,
    pem: Annotated[bool, typer.Option("--pem", help="Print the PEM only.")] = False,
) -> None:
    """Show one certificate by serial (hex, or a unique prefix)."""
    exclusive(ctx, json=json_out, pem=pem)
    record = ctx.obj.pki.certificates.get(_serial(ctx.obj, serial))
    if pem and record.certificate is not None:
        write_output(Path("-"), record.certificate.public_bytes(Encoding.PEM))
        return
    _show(ctx.obj, record, json_out)


@app.command("renew")
def renew(
    ctx: typer.Context,
    serial: SerialArg,
    csr: Annotated[Path | None, typer.Option(help="New key's CSR (default: same key).")] = None,
    validity: Annotated[str | None, typer.Option(help="Default: same lifetime.")] = None,
    out_file: OutOpt = None,
    chain: Annotated[bool, typer.Option(help="Append the issuer chain to --out.")] = False,
    force: ForceOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Issue a successor with the same names (same key unless --csr)."""
    state: CliState = ctx.obj
    check_writable([out_file], force)
    record = state.pki.certificates.renew(
        _serial(state, serial),
        csr_data=read_input(csr, "CSR", "csr") if csr else None,
        validity=_validity(validity),
    )
    pem = _pem_out(state, record, chain)
    if out_file is not None:
        write_output(out_file, pem)
    if json_out:
        emit_json(record_json(state, record))
    elif out_file is None:
        write_output(Path("-"), pem)
    else:
        out.print(f"Renewed as {record.serial_hex} (expires {when(record.not_after)})")


def parse_invalidity_date(text: str | None) -> dt.datetime | None:
    """An ISO 8601 time (UTC when it has no offset), or None.

    Raises:
        InvalidInput: not ISO 8601, or outside the years 1-9999 once converted to UTC.
    """
    if not text:
        return None
    try:
        when_invalid = dt.datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(
            f"invalidity date {text!r} is not ISO 8601", field="invalidity_date"
        ) from None
    return utc_input(when_invalid, "invalidity_date")


@app.command("revoke")
def revoke(
    ctx: typer.Context,
    serial: SerialArg,
    reason: Annotated[
        str,
        typer.Option(
            help="keyCompromise, superseded, cessationOfOperation, affiliationChanged, "
            "privilegeWithdrawn, cACompromise, unspecified ..."
        ),
    ] = "unspecified",
    invalidity_date: Annotated[
        str | None, typer.Option(help="When the key became unusable (ISO 8601, UTC if no offset).")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Revoke a leaf certificate; it appears on the issuer's next CRL (a CA: `ca revoke`)."""
    state: CliState = ctx.obj
    reason_flag = parse_reason(reason)
    record = state.pki.revocation.revoke(
        _serial(state, serial),
        reason_flag,
        invalidity_date=parse_invalidity_date(invalidity_date),
    )
    if json_out:
        emit_json(record_json(state, record))
    else:
        out.print(
            f"Revoked {record.serial_hex} ({reason_name(reason_flag)}). "
            + _publication(state)
            + f"; `pkiforge crl generate --issuer {record.issuer}` publishes it now."
        )


def _publication(state: CliState) -> str:
    """When the revocation reaches a CRL without the operator (the crl-refresh job)."""
    scheduler = state.settings.scheduler
    if not scheduler.enabled:
        return "The scheduler is off (scheduler.enabled): no CRL lists it until one is signed"
    within = format_duration(scheduler.crl_interval + scheduler.tick)
    return (
        "A running `pkiforge serve` (or `scheduler run`) signs the issuer's next CRL with it "
        f"within about {within} (scheduler.crl_interval and tick)"
    )


@app.command("export")
def export(
    ctx: typer.Context,
    serial: SerialArg,
    out_file: Annotated[Path, typer.Option("--out", help="File, or - for stdout.")],
    fmt: Annotated[
        ExportFormat, typer.Option("--format", help="pem, der, chain or pkcs12.")
    ] = ExportFormat.pem,
    key: Annotated[
        Path | None, typer.Option(help="PKCS#12 only: the certificate's key (PEM).")
    ] = None,
    password_file: Annotated[
        Path | None, typer.Option(help=f"PKCS#12 only: its password (or ${P12_ENV}).")
    ] = None,
    force: ForceOpt = False,
) -> None:
    """Write a certificate as PEM, DER, PEM chain (leaf first) or PKCS#12 (with its key)."""
    state: CliState = ctx.obj
    if fmt is not ExportFormat.pkcs12:
        for option, value in (("--key", key), ("--password-file", password_file)):
            if value is not None:
                raise usage_error(f"{option} goes with --format pkcs12 only", ctx)
    check_writable([out_file], force)
    record = state.pki.certificates.get(_serial(state, serial))
    if record.certificate is None:
        raise InvalidInput(f"certificate {record.serial_hex} was never issued", field="serial")
    cert = record.certificate
    if fmt is ExportFormat.pem:
        data = cert.public_bytes(Encoding.PEM)
    elif fmt is ExportFormat.der:
        data = cert.public_bytes(Encoding.DER)
    elif fmt is ExportFormat.chain:
        data = _pem_out(state, record, True)
    else:
        data = _pkcs12(state, record, key, password_file)
    write_output(out_file, data, private=fmt is ExportFormat.pkcs12)


def _pkcs12(
    state: CliState, record: CertificateRecord, key_path: Path | None, password_file: Path | None
) -> bytes:
    if key_path is None:
        raise InvalidInput("PKCS#12 needs the certificate's private key: pass --key", field="key")
    try:
        key = serialization.load_pem_private_key(read_input(key_path, "key", "key"), None)
    except (ValueError, TypeError):
        raise InvalidInput(
            f"{key_path} is not an unencrypted PEM private key", field="key"
        ) from None
    if not isinstance(
        key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
    ):
        raise InvalidInput(f"{key_path}: this key type cannot go into PKCS#12", field="key")
    assert record.certificate is not None
    if key.public_key() != record.certificate.public_key():
        raise InvalidInput(
            f"{key_path} is not the key of certificate {record.serial_hex}", field="key"
        )
    if password_file is not None:
        password = read_input(password_file, "password file", "password_file").strip()
    elif os.environ.get(P12_ENV):
        password = os.environ[P12_ENV].encode()
    else:
        raise InvalidInput(
            f"PKCS#12 needs a password: --password-file or ${P12_ENV}", field="password_file"
        )
    chain = state.pki.hierarchy.chain(record.issuer)
    encryption = (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(600_000)
        .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
        .build(password)
    )
    return pkcs12.serialize_key_and_certificates(
        record.common_name.encode(), key, record.certificate, chain, encryption
    )
