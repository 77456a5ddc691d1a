"""Usage errors: found in whichever click the running Typer uses, shown as one line and a hint.

Typer up to 0.25 raises the exceptions of the `click` package; from 0.26 on it raises those of
its own copy (`typer._click`), which `except click.ClickException` does not catch. Both derive
`typer.BadParameter`, Typer's public name for click's BadParameter, from `UsageError` and that
from `ClickException`, so the classes are taken from its MRO instead of importing a module.
`tests/cli/test_usage.py` fails if a Typer release changes that.
"""

from __future__ import annotations

import typer


def _base(name: str) -> type[Exception]:
    for cls in typer.BadParameter.__mro__:
        if cls.__name__ == name and issubclass(cls, Exception):
            return cls
    raise ImportError(f"typer.BadParameter no longer derives from click's {name}")


CLICK_EXCEPTION = _base("ClickException")
USAGE_ERROR = _base("UsageError")


def usage_error(message: str, ctx: typer.Context | None = None) -> Exception:
    """A usage error for `ctx`'s command; `run()` prints it with a `--help` hint (exit 2)."""
    return USAGE_ERROR(message, ctx)


def exclusive(ctx: typer.Context, **options: object) -> None:
    """Refuse more than one of these options (named as on the command line, `key_out` is
    `--key-out`); an option counts as given when it is not None, False or empty.

    Raises:
        UsageError: two or more are given.
    """
    given = [f"--{name.replace('_', '-')}" for name, value in options.items() if value]
    if len(given) > 1:
        raise usage_error(f"{' and '.join(given)} cannot be used together", ctx)


def describe(exc: Exception) -> tuple[str, str]:
    """The message of a click exception and the hint that follows it."""
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    ctx = getattr(exc, "ctx", None)
    path = ctx.command_path if ctx is not None else "pkiforge"
    return message, f"Try '{path} --help' for help."


def is_help_request(exc: Exception) -> bool:
    """A group called without a command: click (8.2+) raises its help text as a usage error."""
    # matched by name, as Typer's own rich_utils does, since the class is not public anywhere
    return type(exc).__name__ == "NoArgsIsHelpError"
