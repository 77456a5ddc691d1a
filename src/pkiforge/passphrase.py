"""Where the CA passphrase comes from, in one order for the CLI and the server.

1. an explicit file (`--passphrase-file`, or `PKIFORGE_CA_PASSPHRASE_FILE` for servers),
2. `PKIFORGE_CA_PASSPHRASE`,
3. `<home>/secrets/ca-passphrase` (what `init` generates when given none),
4. a prompt, when allowed and on a terminal.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

from pkiforge.errors import InvalidInput
from pkiforge.signers.file import MIN_PASSPHRASE, write_private

ENV = "PKIFORGE_CA_PASSPHRASE"
FILE_ENV = "PKIFORGE_CA_PASSPHRASE_FILE"
STORED = Path("secrets") / "ca-passphrase"


def stored_path(home: Path) -> Path:
    return home / STORED


def given(passphrase_file: Path | None) -> bytes | None:
    """A passphrase the operator supplied explicitly (file or environment), if any."""
    path = passphrase_file or (Path(os.environ[FILE_ENV]) if os.environ.get(FILE_ENV) else None)
    if path is not None:
        return read_secret(path)
    env = os.environ.get(ENV)
    return env.encode() if env else None


def resolve(home: Path, passphrase_file: Path | None = None, *, prompt: bool = True) -> bytes:
    """The passphrase, by the order above.

    Raises:
        InvalidInput: none is available.
    """
    found = given(passphrase_file)
    if found is not None:
        return found
    if stored_path(home).exists():
        return read_secret(stored_path(home))
    if prompt and sys.stdin.isatty():
        import getpass

        return getpass.getpass("CA passphrase: ").encode()
    raise InvalidInput(
        f"no CA passphrase: set {ENV}, pass --passphrase-file, or run on a terminal",
        field="passphrase",
    )


def generate(home: Path) -> Path:
    """Make a strong random passphrase and keep it in <home>/secrets/ (0600)."""
    write_private(stored_path(home), secrets.token_urlsafe(32).encode() + b"\n")
    return stored_path(home)


def read_secret(path: Path) -> bytes:
    """Read a passphrase file (trailing newline ignored).

    Raises:
        InvalidInput: unreadable or too short.
    """
    try:
        value = path.read_bytes().strip()
    except OSError as exc:
        raise InvalidInput(
            f"cannot read passphrase file {path}: {exc.strerror}", field="passphrase_file"
        ) from None
    if len(value) < MIN_PASSPHRASE:
        raise InvalidInput(
            f"passphrase in {path} is shorter than {MIN_PASSPHRASE} characters",
            field="passphrase_file",
        )
    return value
