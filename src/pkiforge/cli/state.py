"""What every command shares: the data directory, settings, the passphrase, the services."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pkiforge import passphrase as secrets_
from pkiforge.errors import NotFound
from pkiforge.pki import Pki
from pkiforge.settings import Settings, load_settings
from pkiforge.wiring import build_pki


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
        """The services over the store (opened on first use).

        Raises:
            NotFound: the data directory of the default SQLite database does not exist.
        """
        if self._pki is None:
            settings = self.settings
            if settings.database_url is None and not self.home.is_dir():
                # SQLite would only say "unable to open database file"
                raise NotFound(
                    f"no pkiforge data directory at {self.home.resolve()}: `pkiforge init` "
                    "creates it (or give the existing one with --home or PKIFORGE_HOME)",
                    field="home",
                )
            self._pki = build_pki(settings, self.passphrase)
        return self._pki

    def close(self) -> None:
        if self._pki is not None:
            self._pki.close()

    @property
    def stored_passphrase_path(self) -> Path:
        return secrets_.stored_path(self.home)

    def passphrase(self) -> bytes:
        """See `pkiforge.passphrase.resolve`."""
        return secrets_.resolve(self.home, self.passphrase_file)

    def given_passphrase(self) -> bytes | None:
        return secrets_.given(self.passphrase_file)

    def generate_passphrase(self) -> Path:
        return secrets_.generate(self.home)
