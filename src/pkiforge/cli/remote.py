"""Calling a pkiforge server from the CLI: an mTLS httpx client and problem+json as our errors."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:  # imported when a command calls a server: the others start without it
    import httpx

from pkiforge.errors import (
    AuthenticationFailed,
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
    PkiError,
    RateLimited,
    StoreUnavailable,
)

ServerOpt = Annotated[
    str | None,
    typer.Option("--server", help="Call this pkiforge API (https://host:8443) instead of the DB."),
]
CertOpt = Annotated[Path | None, typer.Option("--cert", help="Client certificate (mTLS).")]
KeyOpt = Annotated[Path | None, typer.Option("--key", help="Client certificate's key.")]
CACertOpt = Annotated[
    Path | None, typer.Option("--cacert", help="CA bundle to trust (default: system).")
]

_ERRORS: dict[int, type[PkiError]] = {
    400: InvalidInput,
    401: AuthenticationFailed,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    422: InvalidInput,
    503: StoreUnavailable,
}


def client(
    server: str, cert: Path | None, key: Path | None, cacert: Path | None, **kwargs: Any
) -> httpx.Client:
    """An httpx client for `server`, presenting `cert` if given and trusting `cacert`."""
    import httpx

    verify: Any = str(cacert) if cacert else True
    return httpx.Client(
        base_url=server.rstrip("/"),
        verify=verify,
        cert=(str(cert), str(key)) if cert and key else (str(cert) if cert else None),
        timeout=30,
        **kwargs,
    )


def raise_for_problem(response: httpx.Response) -> None:
    """Turn an error response into the matching pkiforge error (its `detail` as message).

    Raises:
        PkiError: any status >= 400.
    """
    if response.status_code < 400:
        return
    try:
        detail = str(response.json().get("detail") or response.reason_phrase)
    except ValueError:
        detail = response.text.strip()[:200] or response.reason_phrase
    message = f"server answered {response.status_code}: {detail}"
    if response.status_code == 429:
        raise RateLimited(message, retry_after=int(response.headers.get("retry-after", "1")))
    raise _ERRORS.get(response.status_code, PkiError)(message)


def call(http: httpx.Client, method: str, path: str, **kwargs: Any) -> Any:
    """Send one request and return its JSON body.

    Raises:
        PkiError: an error answer, or the server cannot be reached (StoreUnavailable).
    """
    import httpx

    try:
        response = http.request(method, path, **kwargs)
    except httpx.TransportError as exc:
        raise StoreUnavailable(f"cannot reach {http.base_url}: {exc}") from None
    raise_for_problem(response)
    return response.json()
