"""`pkiforge ca ...`: the hierarchy, offline root signing, imports."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding

from pkiforge.ca.ca_certs import ROOT_NAME
from pkiforge.ca.ca_revocation import ROOT_CRL_COMMAND, CARevoked
from pkiforge.ca.crl import REASON_NAMES, parse_reason, reason_name
from pkiforge.ca.models import CARecord
from pkiforge.cli.cert_cmd import parse_invalidity_date
from pkiforge.cli.files import check_writable, load_certificate, read_input, write_output
from pkiforge.cli.init_cmd import ca_summary, show_ca, show_cas
from pkiforge.cli.output import emit_json, err, out, progress
from pkiforge.cli.state import CliState
from pkiforge.cli.usage import exclusive
from pkiforge.durations import parse_duration
from pkiforge.errors import InvalidInput
from pkiforge.signers.file import decrypt_key
from pkiforge.x509.keys import parse_key_type

app = typer.Typer(help="The CA hierarchy.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
RootKeyOpt = Annotated[
    Path | None,
    typer.Option("--root-key", help="Location of the offline root key (encrypted PEM)."),
]
ForceOpt = Annotated[bool, typer.Option("--force", help="Replace existing output files.")]
KeyPassOpt = Annotated[
    Path | None, typer.Option(help="Passphrase of --key (default: the CA passphrase).")
]


@app.command("list")
def list_cas(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """List the root and the intermediates."""
    cas = ctx.obj.pki.hierarchy.all()
    if json_out:
        emit_json([ca_summary(c) for c in cas])
    else:
        show_cas(cas)


@app.command("show")
def show(ctx: typer.Context, name: str, json_out: JsonOpt = False) -> None:
    """Show one CA."""
    ca = ctx.obj.pki.hierarchy.get(name)
    if json_out:
        emit_json(ca_summary(ca))
    else:
        show_ca(ca)


@app.command("chain")
def chain(
    ctx: typer.Context,
    name: str,
    out_file: Annotated[Path, typer.Option("--out", help="File, or - for stdout.")] = Path("-"),
    force: ForceOpt = False,
) -> None:
    """PEM bundle of NAME (its current certificate, then the predecessors a rotation left
    that are still valid) followed by its issuers up to the root."""
    check_writable([out_file], force)
    certs = ctx.obj.pki.hierarchy.bundle(name)
    write_output(out_file, b"".join(c.public_bytes(Encoding.PEM) for c in certs))


@app.command("create-intermediate")
def create_intermediate(
    ctx: typer.Context,
    name: str,
    key_type: Annotated[
        str | None, typer.Option(help="rsa2048 (default), p256, p384, ed25519.")
    ] = None,
    validity: Annotated[str | None, typer.Option(help="e.g. 1825d (default).")] = None,
    csr_out: Annotated[
        Path | None,
        typer.Option(help="Keep the key here but write a CSR for an offline root to sign."),
    ] = None,
    root_key: RootKeyOpt = None,
    force: ForceOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Add an issuing intermediate (e.g. infrastructure, agents, external)."""
    state: CliState = ctx.obj
    # with --csr-out the root signs elsewhere (`sign-intermediate`), with its own options
    exclusive(ctx, csr_out=csr_out, root_key=root_key)
    exclusive(ctx, csr_out=csr_out, validity=validity)
    kt = parse_key_type(key_type) if key_type else None
    if csr_out is not None:
        check_writable([csr_out], force)
        with progress(not json_out) as step:
            step(f"generating the {name} key")
            csr = state.pki.hierarchy.create_intermediate_csr(name, kt)
        write_output(csr_out, csr.public_bytes(Encoding.PEM))
        if json_out:
            emit_json({"name": name, "status": "pending", "csr": str(csr_out)})
        else:
            out.print(
                f"Wrote CSR for intermediate {name!r} to {csr_out}. Sign it where the root "
                f"key is (pkiforge ca sign-intermediate --csr {csr_out}), then run "
                f"pkiforge ca import-intermediate {name} --cert SIGNED.pem"
            )
        return
    with progress(not json_out) as step:
        step(f"generating and certifying the {name} key")
        ca = state.pki.hierarchy.create_intermediate(
            name,
            kt,
            parse_duration(validity) if validity else None,
            root_key_ref=str(root_key.resolve()) if root_key else None,
        )
    if json_out:
        emit_json(ca_summary(ca))
    else:
        show_ca(ca)


@app.command("rotate")
def rotate(
    ctx: typer.Context,
    name: str,
    key_type: Annotated[
        str | None, typer.Option(help="rsa2048, p256, p384, ed25519 (default: as now).")
    ] = None,
    validity: Annotated[str | None, typer.Option(help="e.g. 1825d (default).")] = None,
    csr_out: Annotated[
        Path | None,
        typer.Option(help="Keep the new key here but write a CSR for an offline root to sign."),
    ] = None,
    root_key: RootKeyOpt = None,
    force: ForceOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Give intermediate NAME a successor with a new key, same name and purpose: new
    certificates come from it at once; the predecessor keeps answering OCSP and signing
    CRLs for what it issued until it expires."""
    state: CliState = ctx.obj
    exclusive(ctx, csr_out=csr_out, root_key=root_key)
    exclusive(ctx, csr_out=csr_out, validity=validity)
    kt = parse_key_type(key_type) if key_type else None
    if csr_out is not None:
        check_writable([csr_out], force)
        with progress(not json_out) as step:
            step(f"generating the key of {name}'s successor")
            pending, csr = state.pki.rotation.rotate_csr(name, kt)
        write_output(csr_out, csr.public_bytes(Encoding.PEM))
        if json_out:
            emit_json({"name": pending.name, "status": "pending", "csr": str(csr_out)})
        else:
            out.print(
                f"Wrote the CSR of {pending.name!r}, the successor of {name!r}, to {csr_out}. "
                f"Sign it where the root key is (pkiforge ca sign-intermediate --csr {csr_out} "
                f"--name {pending.name}), then run pkiforge ca import-intermediate "
                f"{pending.name} --cert SIGNED.pem; {name!r} issues until then."
            )
        return
    with progress(not json_out) as step:
        step(f"generating and certifying the key of {name}'s successor")
        done = state.pki.rotation.rotate(
            name,
            kt,
            parse_duration(validity) if validity else None,
            root_key_ref=str(root_key.resolve()) if root_key else None,
        )
    if json_out:
        emit_json({**ca_summary(done.successor), "retired": list(done.retired)})
        return
    show_ca(done.successor)
    out.print(
        f"{done.successor.name!r} issues for {name!r} from now on; retired: "
        f"{', '.join(done.retired)} (they answer OCSP and sign CRLs for what they issued). "
        "Clients that trust the root accept both generations already; pkiforge agent and the "
        f"client library fetch the new CA bundle (pkiforge ca chain {name}) with each renewal "
        "and, between renewals, every --bundle-interval (10 minutes by default)."
    )


@app.command("sign-intermediate")
def sign_intermediate(
    ctx: typer.Context,
    csr: Annotated[Path, typer.Option(help="The intermediate's CSR.")],
    name: Annotated[str | None, typer.Option(help="CA name (default: from the CSR).")] = None,
    validity: Annotated[str | None, typer.Option(help="e.g. 1825d (default).")] = None,
    out_file: Annotated[Path, typer.Option("--out", help="File, or - for stdout.")] = Path("-"),
    root_key: RootKeyOpt = None,
    force: ForceOpt = False,
) -> None:
    """Root side of offline signing: certify an intermediate CSR with the root key."""
    check_writable([out_file], force)
    cert = ctx.obj.pki.hierarchy.sign_intermediate(
        read_input(csr, "CSR", "csr"),
        name,
        parse_duration(validity) if validity else None,
        root_key_ref=str(root_key.resolve()) if root_key else None,
    )
    write_output(out_file, cert.public_bytes(Encoding.PEM))


@app.command("import-intermediate")
def import_intermediate(
    ctx: typer.Context,
    name: str,
    cert: Annotated[Path, typer.Option(help="The signed intermediate certificate.")],
    key: Annotated[
        Path | None,
        typer.Option(help="Its encrypted key, when it was not made here with --csr-out."),
    ] = None,
    key_passphrase_file: KeyPassOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Install a signed intermediate (completing create-intermediate --csr-out, or adopting one)."""
    state: CliState = ctx.obj
    certificate, private = _read_ca(state, name, cert, key, key_passphrase_file)
    _show(state.pki.hierarchy.import_intermediate(name, certificate, private), json_out)


@app.command("import")
def import_ca(
    ctx: typer.Context,
    name: str,
    cert: Annotated[Path, typer.Option(help="The CA certificate.")],
    key: Annotated[
        Path | None,
        typer.Option(help="Its encrypted PKCS#8 key; omit for a root whose key stays offline."),
    ] = None,
    key_passphrase_file: KeyPassOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Adopt an existing CA: NAME `root` for a self-signed root, else an intermediate."""
    state: CliState = ctx.obj
    state.create = name == ROOT_NAME  # adopting a root may start a data directory
    certificate, private = _read_ca(state, name, cert, key, key_passphrase_file)
    if name == ROOT_NAME:
        ca = state.pki.hierarchy.import_root(certificate, private)
    elif private is None:
        raise InvalidInput("an intermediate needs its key: pass --key", field="key")
    else:
        ca = state.pki.hierarchy.import_intermediate(name, certificate, private)
    _show(ca, json_out)


@app.command("revoke")
def revoke(
    ctx: typer.Context,
    name: str,
    reason: Annotated[
        str,
        typer.Option(
            help=f"{', '.join(REASON_NAMES)}; cACompromise when its key may be compromised."
        ),
    ] = "unspecified",
    invalidity_date: Annotated[
        str | None,
        typer.Option(help="When the CA key became unusable (ISO 8601, UTC if no offset)."),
    ] = None,
    root_key: RootKeyOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Revoke an intermediate CA: it issues nothing more, mTLS refuses certificates under
    it, and the root's CRL lists it (signed now if the root key is here or given with
    --root-key). The root is never revoked."""
    state: CliState = ctx.obj
    done = state.pki.ca_revocation.revoke(
        name,
        parse_reason(reason),
        invalidity_date=parse_invalidity_date(invalidity_date),
        root_key_ref=str(root_key.resolve()) if root_key else None,
    )
    if json_out:
        emit_json(_revoked_json(done))
        return
    rev = done.certificate.revocation
    assert rev is not None
    out.print(
        f"Revoked CA {name!r} (certificate {done.certificate.serial_hex}, "
        f"{reason_name(rev.reason)}): it issues nothing from now on."
    )
    if done.was_default_issuer:
        err.print(
            f"{name!r} was the default issuer: set ca.default_issuer to an active CA, or "
            "requests without an issuer are refused."
        )
    if done.root_crl is not None:
        out.print(f"Root CRL #{done.root_crl.number} signed; it lists {name!r}.")
    else:
        err.print(
            f"The root CRL was not signed ({done.root_crl_problem}); the revocation is "
            f"recorded. Sign it where the root key is: {ROOT_CRL_COMMAND}"
        )


def _revoked_json(done: CARevoked) -> dict[str, object]:
    rev = done.certificate.revocation
    assert rev is not None
    return {
        **ca_summary(done.ca),
        "revoked_serial": done.certificate.serial_hex,
        "reason": reason_name(rev.reason),
        "revoked_at": rev.revoked_at,
        "invalidity_date": rev.invalidity_date,
        "default_issuer": done.was_default_issuer,
        "root_crl_number": done.root_crl.number if done.root_crl else None,
        "root_crl_pending": done.root_crl_problem,
    }


def _read_ca(
    state: CliState, name: str, cert: Path, key: Path | None, passphrase_file: Path | None
) -> tuple[x509.Certificate, CertificateIssuerPrivateKeyTypes | None]:
    certificate = load_certificate(read_input(cert, "certificate", "cert"))
    return certificate, _load_key(state, name, key, passphrase_file) if key else None


def _show(ca: CARecord, json_out: bool) -> None:
    if json_out:
        emit_json(ca_summary(ca))
    else:
        show_ca(ca)


def _load_key(
    state: CliState, name: str, path: Path, passphrase_file: Path | None
) -> CertificateIssuerPrivateKeyTypes:
    data = read_input(path, "key", "key")
    if passphrase_file is not None:
        passphrase = read_input(passphrase_file, "passphrase file", "key_passphrase_file").strip()
    else:
        passphrase = state.passphrase()
    return decrypt_key(data, passphrase, f"the key {path} of CA {name!r}")
