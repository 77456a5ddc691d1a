"""`pkiforge init` and `pkiforge run`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
import yaml

from pkiforge.ca.ca_certs import ROOT_NAME, validate_ca_name
from pkiforge.ca.context import fingerprint
from pkiforge.ca.hierarchy import InitOptions, InitState
from pkiforge.ca.models import CARecord, CRLRecord
from pkiforge.cli.files import check_folders
from pkiforge.cli.output import emit_json, err, fields, out, progress, table, when
from pkiforge.cli.state import CliState
from pkiforge.errors import Conflict, PkiError
from pkiforge.settings import CONFIG_FILE
from pkiforge.x509.keys import describe_key, parse_key_type
from pkiforge.x509.names import validate_trust_domain


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.command("run")(run)


def init(
    ctx: typer.Context,
    root_key_type: Annotated[
        str | None, typer.Option(help="rsa4096 (default), rsa3072, p384, p256, ed25519.")
    ] = None,
    intermediate_key_type: Annotated[
        str | None, typer.Option(help="rsa2048 (default), p256, p384, ed25519, rsa3072, rsa4096.")
    ] = None,
    intermediate_name: Annotated[str, typer.Option(help="Name of the first issuer.")] = "services",
    root_key_out: Annotated[
        Path | None,
        typer.Option(
            help="Write the root key here (e.g. removable media) instead of the data directory."
        ),
    ] = None,
    trust_domain: Annotated[
        str | None, typer.Option(help="SPIFFE trust domain of service identities.")
    ] = None,
    organization: Annotated[str | None, typer.Option(help="O= of the CA names.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Create the root CA and the first issuing intermediate in the data directory."""
    state: CliState = ctx.obj
    # every option is checked before the data directory is made, so a refusal leaves nothing
    # behind and a retry starts clean
    options = InitOptions(
        root_key_type=parse_key_type(root_key_type) if root_key_type else None,
        intermediate_key_type=(
            parse_key_type(intermediate_key_type) if intermediate_key_type else None
        ),
        intermediate_name=validate_ca_name(intermediate_name),
        root_key_location=str(root_key_out.resolve()) if root_key_out else None,
    )
    if root_key_out is not None:
        check_folders({"--root-key-out": root_key_out})
    _prepare_home(state, trust_domain, organization)
    init_state = state.pki.hierarchy.init_state()
    if init_state is InitState.DONE:
        raise Conflict(f"a CA already exists in {state.home}; refusing to overwrite it")
    generated = _ensure_passphrase(state, init_state)
    with progress(not json_out) as step:
        cas = state.pki.hierarchy.initialize(options, progress=step)
    root_crl = _first_root_crl(state, root_key_out) if root_key_out else None
    if json_out:
        emit_json(
            {
                "home": str(state.home),
                "cas": [ca_summary(c) for c in cas],
                "generated_passphrase_file": str(generated) if generated else None,
                "root_crl_next_update": root_crl.next_update if root_crl else None,
            }
        )
        return
    out.print(f"Initialised a CA in {state.home}")
    show_cas(cas)
    if root_key_out:
        out.print(
            f"The root key was written to {root_key_out}; keep it offline. "
            "Use --root-key to sign intermediates or root CRLs with it."
        )
    if root_crl is not None:
        out.print(
            f"The root's CRL #{root_crl.number} lasts until {when(root_crl.next_update)}: "
            "sign the next one before then (docs/operations.md, Signing the root's CRL)."
        )
    if generated:
        err.print(
            f"A random CA passphrase was generated and stored in {generated} (mode 0600).\n"
            "Move it to a secret manager and delete the file; then provide it through "
            "PKIFORGE_CA_PASSPHRASE or --passphrase-file."
        )


def _first_root_crl(state: CliState, key: Path) -> CRLRecord | None:
    """The root's first CRL, signed while its key is at hand: relying parties can check the
    intermediates from the start, and its nextUpdate says when the next ceremony is due."""
    try:
        return state.pki.revocation.generate_crl(ROOT_NAME, key_ref=str(key.resolve()))
    except PkiError as exc:  # the CA is made; the CRL can be signed later
        err.print(
            f"warning: the root's first CRL was not signed ({exc}); sign it with "
            f"`pkiforge crl generate --issuer {ROOT_NAME} --root-key {key}`"
        )
        return None


def run(
    ctx: typer.Context,
    serve: Annotated[bool, typer.Option(help="Serve the API after showing the CA.")] = True,
) -> None:
    """Initialise on first use (never over an existing CA), show the CA, serve the API."""
    state: CliState = ctx.obj
    _prepare_home(state, None, None)
    init_state = state.pki.hierarchy.init_state()
    if init_state is not InitState.DONE:  # first use, or an init that did not finish
        generated = _ensure_passphrase(state, init_state)
        with progress() as step:
            state.pki.hierarchy.initialize(InitOptions(), progress=step)
        if generated:
            err.print(f"A random CA passphrase was generated and stored in {generated} (0600).")
    out.print(f"pkiforge CA in {state.home}")
    show_cas(state.pki.hierarchy.all())
    if serve:
        from pkiforge.cli.serve_cmd import start

        start(state, None, None, None)


def _prepare_home(state: CliState, trust_domain: str | None, organization: str | None) -> None:
    config = state.home / CONFIG_FILE
    if config.exists() and (trust_domain or organization):
        raise Conflict(f"{config} exists; edit it to change the trust domain or organization")
    ca: dict[str, str] = {}
    if trust_domain:
        ca["trust_domain"] = validate_trust_domain(trust_domain)
    if organization:
        ca["organization"] = organization
    # the inventory and the audit trail are nobody else's business: a new home is 0700
    state.home.mkdir(mode=0o700, parents=True, exist_ok=True)
    state.create = True
    if not ca:
        return
    config.write_text(yaml.safe_dump({"ca": ca}, sort_keys=False), encoding="utf-8")


def _ensure_passphrase(state: CliState, init_state: InitState) -> Path | None:
    """Use the operator's passphrase; otherwise generate one into <home>/secrets/ (only when
    there is no CA yet: a key an earlier run wrote needs the passphrase it was written with).
    """
    if state.given_passphrase() is not None or state.stored_passphrase_path.exists():
        return None
    if init_state is not InitState.EMPTY:
        return None  # the key store asks for it, or says how to give it
    return state.generate_passphrase()


def ca_summary(ca: CARecord) -> dict[str, object]:
    cert = ca.certificate
    return {
        "name": ca.name,
        "kind": ca.kind.value,
        "status": ca.status.value,
        "parent": ca.parent,
        "subject": cert.subject.rfc4514_string() if cert else None,
        "serial": format(cert.serial_number, "x") if cert else None,
        # SHA-256 of the DER certificate in hex, as `enroll --root-fingerprint` and
        # `step ca bootstrap --fingerprint` take it
        "fingerprint_sha256": fingerprint(cert) if cert else None,
        "key": describe_key(cert.public_key()) if cert else None,
        "not_before": cert.not_valid_before_utc if cert else None,
        "not_after": cert.not_valid_after_utc if cert else None,
        "key_location": "offline" if ca.key_ref is None else ca.key_ref.removeprefix("file:"),
        "crl_number": ca.crl_number,
    }


def show_cas(cas: list[CARecord]) -> None:
    rows = [
        [
            c.name,
            c.kind.value,
            c.status.value,
            s["key"],
            s["parent"],
            when(c.certificate.not_valid_after_utc if c.certificate else None),
            s["key_location"],
        ]
        for c in cas
        for s in [ca_summary(c)]
    ]
    table(None, ["name", "kind", "status", "key", "parent", "expires", "key file"], rows)


def show_ca(ca: CARecord) -> None:
    fields(list(ca_summary(ca).items()))
