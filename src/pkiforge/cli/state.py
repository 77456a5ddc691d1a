"""What every command shares: the data directory, settings, the passphrase, the services."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pkiforge import passphrase as secrets_
from pkiforge.errors import NotFound
from pkiforge.pki import Pki
from pkiforge.settings import DATABASE_FILE, Settings, load_settings
from pkiforge.wiring import build_pki


@dataclass
class CliState:
    """Built once per invocation from the global options; services are opened lazily."""

    home: Path
    database_url: str | None = None
    passphrase_file: Path | None = None
    # init, run and `ca import root` make the data directory's database; others need it
    create: bool = False
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
            NotFound: no default SQLite database in the data directory (unless `create`).
        """
        if self._pki is None:
            settings = self.settings
            if settings.database_url is None:
                self._require_home()
            self._pki = build_pki(settings, self.passphrase)
        return self._pki

    def _require_home(self) -> None:
        """Refuse a folder that holds no pkiforge database: opening it would create an empty
        one (or SQLite would only say "unable to open database file"), and a read command
        would then report an empty CA rather than the wrong folder.

        Raises:
            NotFound: naming the folder, `pkiforge init` and --home.
        """
        where = self.home.resolve()
        if not self.home.is_dir():
            raise NotFound(
                f"no pkiforge data directory at {where}: `pkiforge init` creates it "
                "(or give the existing one with --home or PKIFORGE_HOME)",
                field="home",
            )
        if not self.create and not (self.home / DATABASE_FILE).is_file():
            raise NotFound(
                f"no pkiforge data directory at {where} (the folder has no {DATABASE_FILE}): "
                "`pkiforge init` creates one there (or give the existing one with --home or "
                "PKIFORGE_HOME)",
                field="home",
            )

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
