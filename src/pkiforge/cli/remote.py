"""Calling a pkiforge server from the CLI: one TLS context from the mTLS options, and the
client library (`PkiClient`) for the requests and the problem+json errors."""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from pkiforge.errors import InvalidInput, PkiError, UntrustedServer

if TYPE_CHECKING:  # imported when a command calls a server: the others start without it
    from pkiforge.client.core import Reply
    from pkiforge.client.sync import PkiClient

ServerOpt = Annotated[
    str | None,
    typer.Option("--server", help="Call this pkiforge API (https://host:8443) instead of the DB."),
]
CertOpt = Annotated[
    Path | None, typer.Option("--cert", help="Client certificate chain (mTLS), leaf first.")
]
KeyOpt = Annotated[
    Path | None, typer.Option("--key", help="Client certificate's key (default: in --cert).")
]
CACertOpt = Annotated[
    Path | None, typer.Option("--cacert", help="CA bundle to trust (default: system).")
]
TIMEOUT = 30.0


def trust_hint(exc: PkiError) -> PkiError:
    """`exc`, with what to do about it when the server was not trusted."""
    if not isinstance(exc, UntrustedServer):
        return exc
    return UntrustedServer(
        f"{exc}; pass the CA certificate that issued it with --cacert FILE", **exc.data
    )


def tls_context(cert: Path | None, key: Path | None, cacert: Path | None) -> ssl.SSLContext:
    """The one TLS context of a remote command: trust `cacert`, present `cert` with `key`.

    Raises:
        typer.BadParameter: `--key` without `--cert` (a usage error).
        InvalidInput: a file is missing or not what it should be.
    """
    from pkiforge.client.tls import file_client_context

    if key is not None and cert is None:
        raise typer.BadParameter("needs --cert", param_hint="'--key'")
    for name, path in (("cacert", cacert), ("cert", cert), ("key", key)):
        if path is not None and not path.is_file():
            raise InvalidInput(f"--{name} {path}: no such file", field=name)
    try:
        return file_client_context(ca=cacert, cert=cert, key=key)
    except ssl.SSLError as exc:  # not PEM, no certificate, or a key that does not fit
        raise InvalidInput(
            f"cannot use the TLS files (--cacert, --cert, --key): {exc.reason or exc}",
            field="cert",
        ) from None


def require_server(server: str | None, **tls_options: Path | None) -> None:
    """Refuse mTLS options without `--server`: they would be ignored by a local command.

    Raises:
        typer.BadParameter: `--cert`, `--key` or `--cacert` given without `--server`.
    """
    given = [f"--{name}" for name, value in tls_options.items() if value is not None]
    if server is None and given:
        hint = " / ".join(f"'{option}'" for option in given)
        raise typer.BadParameter(
            "only with --server (a local command would ignore it)", param_hint=hint
        )


def client(server: str, cert: Path | None, key: Path | None, cacert: Path | None) -> PkiClient:
    """A `PkiClient` for `server`, presenting `cert` if given and trusting `cacert`."""
    from pkiforge.client.sync import PkiClient

    return PkiClient(server, verify=tls_context(cert, key, cacert), timeout=TIMEOUT)


def _json(reply: Reply) -> Any:
    return reply.json()


def call(
    pki: PkiClient,
    method: str,
    path: str,
    *,
    params: Mapping[str, str | int] | None = None,
    json: Any = None,
) -> Any:
    """Send one request and return its JSON body.

    Raises:
        PkiError: an error answer (by status and problem type), or Unreachable.
    """
    from pkiforge.client.core import Call

    try:
        return pki.send(Call(method, path, _json, params=dict(params or {}), body=json))
    except UntrustedServer as exc:
        raise trust_hint(exc) from None
