"""The app factory uvicorn's worker processes call: settings and passphrase from the environment.

`pkiforge serve` sets PKIFORGE_HOME (and PKIFORGE_DATABASE_URL, PKIFORGE_CA_PASSPHRASE_FILE
when given) before starting workers; the passphrase itself is never put into the environment.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI

from pkiforge import passphrase
from pkiforge.api.app import create_app
from pkiforge.settings import load_settings
from pkiforge.wiring import build_pki


def app_from_env() -> FastAPI:
    home = Path(os.environ.get("PKIFORGE_HOME", "./pkiforge-data"))
    settings = load_settings(home, database_url=os.environ.get("PKIFORGE_DATABASE_URL"))
    pki = build_pki(settings, lambda: passphrase.resolve(home, prompt=False))
    return create_app(settings, pki)
