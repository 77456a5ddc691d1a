"""What every command shares: the data directory, settings, the passphrase, the services."""

from __future__ import annotations

import os
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path

from pkiforge.errors import InvalidInput
from pkiforge.settings import Settings, load_settings
from pkiforge.signers.file import MIN_PASSPHRASE, write_private
from pkiforge.wiring import Pki, build_pki

PASSPHRASE_ENV = "PKIFORGE_CA_PASSPHRASE"  # noqa: S105 (a variable name)
SECRETS_DIR = "secrets"
PASSPHRASE_FILE = "ca-passphrase"  # noqa: S105 (a file name)


@dataclass
class CliState:
    """Built once per invocation from the global options; services are opened lazily."""

    home: Path
    database_url: str | None = None
    passphrase_file: Path | None = None
    _settings: Settings | None = None
    _pki: Pki | None = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.home, database_url=self.database_url)
        return self._settings

    @property
    def pki(self) -> Pki:
        if self._pki is None:
            self._pki = build_pki(self.settings, self.passphrase)
        return self._pki

    def close(self) -> None:
        if self._pki is not None:
            self._pki.close()

    @property
    def stored_passphrase_path(self) -> Path:
        return self.home / SECRETS_DIR / PASSPHRASE_FILE

    def passphrase(self) -> bytes:
        """--passphrase-file, then $PKIFORGE_CA_PASSPHRASE, then <home>/secrets, then a prompt.

        Raises:
            InvalidInput: none of them is available.
        """
        found = self.given_passphrase()
        if found is not None:
            return found
        if self.stored_passphrase_path.exists():
            return _read_secret(self.stored_passphrase_path)
        if sys.stdin.isatty():
            import getpass

            return getpass.getpass("CA passphrase: ").encode()
        raise InvalidInput(
            f"no CA passphrase: set {PASSPHRASE_ENV}, pass --passphrase-file, or run on a terminal",
            field="passphrase",
        )

    def given_passphrase(self) -> bytes | None:
        """A passphrase the operator supplied explicitly (file or environment), if any."""
        if self.passphrase_file is not None:
            return _read_secret(self.passphrase_file)
        env = os.environ.get(PASSPHRASE_ENV)
        return env.encode() if env else None

    def generate_passphrase(self) -> Path:
        """Make a strong random passphrase and keep it in <home>/secrets/ (0600)."""
        write_private(self.stored_passphrase_path, secrets.token_urlsafe(32).encode() + b"\n")
        return self.stored_passphrase_path


def _read_secret(path: Path) -> bytes:
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
