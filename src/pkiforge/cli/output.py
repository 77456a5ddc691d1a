"""Rendering: Rich tables and messages for people, JSON for scripts, errors as one line."""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from pkiforge.errors import (
    AcmeError,
    AuthenticationFailed,
    BadPassphrase,
    Conflict,
    IntegrityError,
    InvalidInput,
    NotFound,
    PermissionDenied,
    PkiError,
    RateLimited,
    ServerError,
    StoreUnavailable,
    Unreachable,
    UntrustedServer,
)

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

# The documented exit codes (README, CLI section); every failure ends with one of them.
OK, UNEXPECTED, USAGE, INVALID_INPUT, NOT_FOUND = range(5)
CONFLICT, REFUSED, UNAVAILABLE, INTEGRITY, UNTRUSTED = range(5, 10)
INTERRUPTED = 130  # the shells' convention for Ctrl-C
EXIT_TABLE: dict[int, str] = {
    OK: "ok",
    UNEXPECTED: "unexpected error (a bug: report it with the message or traceback)",
    USAGE: "usage (unknown command or option, missing or malformed argument)",
    INVALID_INPUT: "invalid input (a bad value, file or configuration)",
    NOT_FOUND: "not found",
    CONFLICT: "conflict (exists, wrong state, offline key)",
    REFUSED: "wrong passphrase or not allowed",
    UNAVAILABLE: "database, server or webhook subscriber unavailable",
    INTEGRITY: "integrity failure",
    UNTRUSTED: "the server's TLS certificate is not trusted (give its CA with --cacert)",
    INTERRUPTED: "interrupted (Ctrl-C, or end of input at the passphrase prompt)",
}
EXIT_CODES: tuple[tuple[type[PkiError], int], ...] = (
    (InvalidInput, INVALID_INPUT),
    (NotFound, NOT_FOUND),
    (Conflict, CONFLICT),
    (BadPassphrase, REFUSED),
    (AuthenticationFailed, REFUSED),
    (PermissionDenied, REFUSED),
    (RateLimited, REFUSED),
    (AcmeError, REFUSED),  # an ACME request refused; only the ACME router raises it
    (StoreUnavailable, UNAVAILABLE),
    (Unreachable, UNAVAILABLE),
    (ServerError, UNAVAILABLE),
    (IntegrityError, INTEGRITY),
    (UntrustedServer, UNTRUSTED),
)


def exit_code(exc: PkiError) -> int:
    for kind, code in EXIT_CODES:
        if isinstance(exc, kind):
            return code
    return UNEXPECTED  # a bare PkiError: every kind of refusal has its own class above


def fail(message: str, code: int = UNEXPECTED) -> typer.Exit:
    """Print `error: message` on stderr and return the Exit to raise."""
    err.print(f"[red]error:[/red] {escape(message)}", markup=True, highlight=False)
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


def table(
    title: str | None,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    whole: Collection[str] = (),
) -> None:
    """Rows under a header: a Rich table on a terminal, where the `whole` columns (serials) are
    never folded, so that a value can be copied from any width and pasted into a command;
    piped or redirected, plain aligned lines (`plain_table`)."""
    cells = [[str(v) if v is not None else "-" for v in row] for row in rows]
    if not out.is_terminal:
        sys.stdout.write(plain_table(title, columns, cells))
        sys.stdout.flush()
        return
    t = Table(title=title, show_lines=False, header_style="bold")
    for col in columns:
        t.add_column(col, overflow="fold", no_wrap=col in whole)
    for row in cells:
        t.add_row(*row)
    out.print(t)


def plain_table(title: str | None, columns: Sequence[str], cells: Sequence[Sequence[str]]) -> str:
    """One line per row, columns padded with spaces, every value whole: no box and no folding
    at any width, for `grep`, `less` and logs (`--json` is the format for programs)."""
    widths = [max(len(value) for value in column) for column in zip(columns, *cells, strict=True)]
    lines = [title] if title else []
    for row in (columns, *cells):
        lines.append("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines) + "\n"


def fields(pairs: Sequence[tuple[str, Any]]) -> None:
    """`name  value` lines, printed as they are: no markup, and never folded (fingerprints and
    serials stay whole at any terminal width)."""
    width = max((len(key) for key, _ in pairs), default=0)
    for key, value in pairs:
        shown = str(value) if value is not None else "-"
        out.print(Text.assemble((key.ljust(width), "bold"), "  ", shown))


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
