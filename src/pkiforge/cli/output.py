"""Rendering: Rich tables and messages for people, JSON for scripts, errors as one line."""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from pkiforge.errors import (
    AuthenticationFailed,
    BadPassphrase,
    Conflict,
    IntegrityError,
    InvalidInput,
    NotFound,
    PermissionDenied,
    PkiError,
    RateLimited,
    StoreUnavailable,
    Unreachable,
)

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

# exit codes: 0 ok, 1 unexpected, 2 usage (Typer), then one per kind of refusal
EXIT_CODES: tuple[tuple[type[PkiError], int], ...] = (
    (InvalidInput, 3),
    (NotFound, 4),
    (Conflict, 5),
    (BadPassphrase, 6),
    (AuthenticationFailed, 6),
    (PermissionDenied, 6),
    (RateLimited, 6),
    (StoreUnavailable, 7),
    (Unreachable, 7),
    (IntegrityError, 8),
)


def exit_code(exc: PkiError) -> int:
    for kind, code in EXIT_CODES:
        if isinstance(exc, kind):
            return code
    return 1


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print `error: message` on stderr and return the Exit to raise."""
    err.print(f"[red]error:[/red] {message}", markup=True, highlight=False)
    return typer.Exit(code)


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("ascii", "replace")
    return str(value)


def when(value: dt.datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    t = Table(title=title, show_lines=False, header_style="bold")
    for col in columns:
        t.add_column(col, overflow="fold")
    for row in rows:
        t.add_row(*[str(v) if v is not None else "-" for v in row])
    out.print(t)


def fields(pairs: Sequence[tuple[str, Any]]) -> None:
    t = Table.grid(padding=(0, 2))
    t.add_column(style="bold")
    t.add_column(overflow="fold")
    for key, value in pairs:
        t.add_row(key, str(value) if value is not None else "-")
    out.print(t)


@contextmanager
def progress(enabled: bool = True) -> Iterator[Callable[[str], None]]:
    """A step reporter: a spinner on a terminal, plain lines on stderr otherwise."""
    if not enabled:
        yield lambda _msg: None
        return
    if err.is_terminal:
        with err.status("working...") as status:
            yield lambda msg: status.update(f"{msg}...")
    else:
        yield lambda msg: err.print(f"{msg}...")
