"""`pkiforge keys ...`: request-signing key pairs and the key registry (local DB or --server)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from cryptography.hazmat.primitives import serialization

from pkiforge.actor import OPERATOR
from pkiforge.auth.algorithms import SignatureAlgorithm, fingerprint, generate_private_key
from pkiforge.auth.keys import KeyStatus, RegisteredKey
from pkiforge.auth.registry import KeyQuery, KeyRegistration, KeyRegistry
from pkiforge.cli import remote
from pkiforge.cli.files import check_writable, read_input, write_output
from pkiforge.cli.output import emit_json, err, fields, table, when
from pkiforge.cli.state import CliState
from pkiforge.client.core import segment
from pkiforge.errors import InvalidInput
from pkiforge.store.key_repos import SqlKeyRepository

app = typer.Typer(help="Request-signing keys (RFC 9421): generate, register, list, revoke.")
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
ALGORITHMS = {
    "ed25519": SignatureAlgorithm.ED25519,
    "ecdsa-p256": SignatureAlgorithm.ECDSA_P256_SHA256,
    "ecdsa-p384": SignatureAlgorithm.ECDSA_P384_SHA384,
    "rsa-pss-sha512": SignatureAlgorithm.RSA_PSS_SHA512,
    "rsa-v1_5-sha256": SignatureAlgorithm.RSA_V1_5_SHA256,
}
COLUMNS = ["key id", "client", "algorithm", "status", "created", "fingerprint"]


def _registry(state: CliState) -> KeyRegistry:
    repo = SqlKeyRepository(state.pki.store, audit=state.pki.ctx.audit)
    return KeyRegistry(repo, state.pki.ctx.clock)


def _as_dict(key: RegisteredKey) -> dict[str, Any]:
    return {
        "key_id": key.key_id,
        "fingerprint": key.fingerprint,
        "algorithm": str(key.algorithm),
        "client_name": key.client_name,
        "email": key.email,
        "organization": key.organization,
        "status": key.status.value,
        "created_at": key.created_at.isoformat(),
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
        "revocation_reason": key.revocation_reason,
    }


def _show(key: dict[str, Any], json_out: bool) -> None:
    if json_out:
        emit_json(key)
        return
    fields([(name, key.get(name)) for name in key])


@app.command("generate")
def generate(
    name: Annotated[str, typer.Option("--name", help="Client name (also the file names).")],
    out_dir: Annotated[Path, typer.Option("--out-dir", help="Folder for the key files.")],
    algorithm: Annotated[str, typer.Option("--algorithm", help="|".join(ALGORITHMS))] = "ed25519",
    rsa_bits: Annotated[int, typer.Option("--rsa-bits", help="RSA key size.")] = 3072,
    force: Annotated[bool, typer.Option("--force", help="Replace existing files.")] = False,
) -> None:
    """Make a key pair: NAME.key (0600), NAME.pub.pem and NAME.json (metadata, key id: null)."""
    chosen = ALGORITHMS.get(algorithm) or _rfc_name(algorithm)
    if not name or "/" in name or name.startswith("."):
        raise InvalidInput("--name must be a plain file name", field="name")
    paths = [out_dir / f"{name}.key", out_dir / f"{name}.pub.pem", out_dir / f"{name}.json"]
    check_writable(paths, force)
    key = generate_private_key(chosen, rsa_bits)
    public = key.public_key()
    write_output(
        paths[0],
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        private=True,
    )
    write_output(
        paths[1],
        public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )
    metadata = {
        "client_name": name,
        "algorithm": str(chosen),
        "key_id": None,  # filled in by `pkiforge keys register`
        "fingerprint": fingerprint(public),
        "private_key": paths[0].name,
        "public_key": paths[1].name,
    }
    write_output(paths[2], (json.dumps(metadata, indent=2) + "\n").encode())
    err.print(f"wrote {paths[0]} (0600), {paths[1]} and {paths[2]}; next: pkiforge keys register")


def _rfc_name(value: str) -> SignatureAlgorithm:
    try:
        return SignatureAlgorithm(value)
    except ValueError:
        raise InvalidInput(
            f"unknown algorithm {value!r}; use one of {', '.join(ALGORITHMS)}", field="algorithm"
        ) from None


@app.command("register")
def register(
    ctx: typer.Context,
    public_key: Annotated[Path, typer.Option("--public-key", help="PEM public key file.")],
    name: Annotated[str, typer.Option("--name", help="Client name.")],
    email: Annotated[str | None, typer.Option("--email")] = None,
    organization: Annotated[str | None, typer.Option("--organization")] = None,
    algorithm: Annotated[
        str | None, typer.Option("--algorithm", help="RFC 9421 name (default: the key's).")
    ] = None,
    server: remote.ServerOpt = None,
    cert: remote.CertOpt = None,
    key: remote.KeyOpt = None,
    cacert: remote.CACertOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Register a public key; prints its key id (and fills it into NAME.json next to it)."""
    remote.require_server(server, cert=cert, key=key, cacert=cacert)
    pem = read_input(public_key, "public key", "public_key")
    if algorithm in ALGORITHMS:
        algorithm = str(ALGORITHMS[algorithm])
    if server:
        body: dict[str, str | None] = {"public_key": pem.decode("utf-8", "replace")}
        body["client_name"] = name
        body |= {"email": email, "organization": organization, "algorithm": algorithm}
        with remote.client(server, cert, key, cacert) as pki:
            shown = remote.call(pki, "POST", "/api/v1/keys", json=body)
    else:
        state: CliState = ctx.obj
        registration = KeyRegistration(pem, name, email, organization, algorithm)
        shown = _as_dict(_registry(state).register(registration, OPERATOR))
    _fill_metadata(public_key, shown)
    _show(shown, json_out)


def _fill_metadata(public_key: Path, key: dict[str, Any]) -> None:
    """Write the new key id into the metadata `keys generate` left next to the public key."""
    if not public_key.name.endswith(".pub.pem"):
        return
    meta = public_key.with_name(public_key.name.removesuffix(".pub.pem") + ".json")
    try:
        data = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if isinstance(data, dict) and data.get("fingerprint") == key.get("fingerprint"):
        data["key_id"] = key["key_id"]
        write_output(meta, (json.dumps(data, indent=2) + "\n").encode())


@app.command("list")
def list_keys(
    ctx: typer.Context,
    status: Annotated[KeyStatus | None, typer.Option("--status")] = None,
    client_name: Annotated[str | None, typer.Option("--name", help="Only this client.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=500)] = 100,
    server: remote.ServerOpt = None,
    cert: remote.CertOpt = None,
    key: remote.KeyOpt = None,
    cacert: remote.CACertOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Registered keys, newest first."""
    remote.require_server(server, cert=cert, key=key, cacert=cacert)
    if server:
        params: dict[str, str | int] = {"limit": limit}
        params |= {k: v for k, v in [("status", status), ("client_name", client_name)] if v}
        with remote.client(server, cert, key, cacert) as pki:
            keys = remote.call(pki, "GET", "/api/v1/keys", params=params)["items"]
    else:
        state: CliState = ctx.obj
        query = KeyQuery(status=status, client_name=client_name, limit=limit)
        keys = [_as_dict(k) for k in _registry(state).search(query)]
    if json_out:
        emit_json(keys)
        return
    rows = [
        [
            k["key_id"],
            k["client_name"],
            k["algorithm"],
            k["status"],
            when(_parse(k["created_at"])),
            k["fingerprint"][:16] + "…",
        ]
        for k in keys
    ]
    table(None, COLUMNS, rows)


def _parse(value: str) -> Any:
    import datetime as dt

    return dt.datetime.fromisoformat(value)


@app.command("revoke")
def revoke(
    ctx: typer.Context,
    key_id: Annotated[str, typer.Argument(help="Key id.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (kept with the key).")],
    server: remote.ServerOpt = None,
    cert: remote.CertOpt = None,
    key: remote.KeyOpt = None,
    cacert: remote.CACertOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Revoke a key for good: servers refuse it within 5 s (at once where it was revoked)."""
    remote.require_server(server, cert=cert, key=key, cacert=cacert)
    if server:
        with remote.client(server, cert, key, cacert) as pki:
            path = f"/api/v1/keys/{segment(key_id)}/revoke"
            shown = remote.call(pki, "POST", path, json={"reason": reason})
    else:
        state: CliState = ctx.obj
        shown = _as_dict(_registry(state).revoke(key_id, reason, OPERATOR))
    if json_out:
        emit_json(shown)
        return
    err.print(f"key {shown['key_id']} revoked ({shown['revocation_reason']})")
