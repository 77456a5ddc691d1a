"""`pkiforge request METHOD URL`: one RFC 9421 signed request, like curl; prints the answer."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from cryptography.hazmat.primitives import serialization

from pkiforge.auth.algorithms import PrivateKey, SignatureAlgorithm
from pkiforge.cli import remote
from pkiforge.cli.files import read_input
from pkiforge.cli.output import emit_json, exit_code
from pkiforge.cli.usage import exclusive
from pkiforge.client.errors import transport_error
from pkiforge.errors import InvalidInput

if TYPE_CHECKING:  # imported when the command runs: the other commands start without it
    import httpx


def exit_for(response: httpx.Response) -> int:
    """The exit code for an error answer (status >= 400): that of the exception the client
    library raises for it, so that `request` and the other remote commands agree."""
    from pkiforge.client.errors import error_from_problem

    return exit_code(error_from_problem(response.status_code, response.headers, response.content))


def register(app: typer.Typer) -> None:
    app.command("request")(request_cmd)


def request_cmd(
    ctx: typer.Context,
    method: Annotated[str, typer.Argument(help="GET, POST, PUT, DELETE, ...")],
    url: Annotated[str, typer.Argument(help="Full URL, e.g. https://api.internal/v1/items")],
    key_id: Annotated[str, typer.Option("--key-id", help="Registered key id.")],
    private_key: Annotated[Path, typer.Option("--private-key", help="PEM private key file.")],
    data: Annotated[
        str | None, typer.Option("-d", "--data", help="Body; @FILE reads a file, @- stdin.")
    ] = None,
    header: Annotated[
        list[str] | None, typer.Option("-H", "--header", help="'Name: value' (repeatable).")
    ] = None,
    cacert: remote.CACertOpt = None,
    cert: remote.CertOpt = None,
    key: remote.KeyOpt = None,
    algorithm: Annotated[
        str | None, typer.Option("--algorithm", help="RFC 9421 name (default: the key's).")
    ] = None,
    include: Annotated[
        bool, typer.Option("-i", "--include", help="Print status and headers too.")
    ] = False,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print {status, headers, body} as JSON.")
    ] = False,
) -> None:
    """Sign METHOD URL with the private key and print the response body (exit 0 below 400).

    With --cert (and --key) it also presents a client certificate, for APIs behind mTLS.
    """
    exclusive(ctx, include=include, json=json_out)
    import httpx

    from pkiforge.client.auth import SigningAuth

    body = _body(data)
    headers = _headers(header or [])
    if body and not any(k.lower() == "content-type" for k, _ in headers):
        headers.append(("Content-Type", _guess_type(body)))
    auth = SigningAuth(
        key_id=key_id, private_key=_load_key(private_key), algorithm=_algorithm(algorithm)
    )
    tls = remote.tls_context(cert, key, cacert)
    try:
        with httpx.Client(verify=tls, timeout=remote.TIMEOUT) as http:
            response = http.request(method.upper(), url, content=body, headers=headers, auth=auth)
    except httpx.TransportError as exc:
        raise remote.trust_hint(transport_error(url, exc)) from None
    _print(response, include, json_out)
    if response.status_code >= 400:
        raise typer.Exit(exit_for(response))


def _body(data: str | None) -> bytes:
    if data is None:
        return b""
    if data.startswith("@"):
        return read_input(Path(data[1:]), "request body", "data")
    return data.encode("utf-8")


def _headers(lines: list[str]) -> list[tuple[str, str]]:
    parsed = []
    for line in lines:
        name, sep, value = line.partition(":")
        if not sep or not name.strip() or any(c in name for c in " \t\r\n"):
            raise InvalidInput(f"header {line!r} is not 'Name: value'", field="header")
        parsed.append((name.strip(), value.strip()))
    return parsed


def _guess_type(body: bytes) -> str:
    try:
        json.loads(body)
    except ValueError:
        return "application/octet-stream"
    return "application/json"


def _load_key(path: Path) -> PrivateKey:
    pem = read_input(path, "private key", "private_key")
    try:
        key = serialization.load_pem_private_key(pem, None)
    except (ValueError, TypeError):
        raise InvalidInput(
            f"{path} is not an unencrypted PEM private key", field="private_key"
        ) from None
    return key  # type: ignore[return-value]  # SigningAuth applies the key policy


def _algorithm(name: str | None) -> SignatureAlgorithm | None:
    if name is None:
        return None
    from pkiforge.cli.keys_cmd import ALGORITHMS

    if name in ALGORITHMS:
        return ALGORITHMS[name]
    try:
        return SignatureAlgorithm(name)
    except ValueError:
        raise InvalidInput(f"unknown algorithm {name!r}", field="algorithm") from None


def _print(response: httpx.Response, include: bool, json_out: bool) -> None:
    if json_out:
        try:
            content: Any = response.json()
        except ValueError:
            content = response.text
        emit_json(
            {"status": response.status_code, "headers": dict(response.headers), "body": content}
        )
        return
    if include:
        status = f"{response.http_version} {response.status_code} {response.reason_phrase}"
        sys.stdout.write(status + "\n")
        for name, value in response.headers.multi_items():
            sys.stdout.write(f"{name}: {value}\n")
        sys.stdout.write("\n")
    sys.stdout.flush()
    sys.stdout.buffer.write(response.content)
    if response.content and not response.content.endswith(b"\n"):
        sys.stdout.buffer.write(b"\n")
    sys.stdout.flush()
