"""The app factory uvicorn's worker processes call: settings and passphrase from the environment.

`pkiforge serve` sets PKIFORGE_HOME (and PKIFORGE_DATABASE_URL, PKIFORGE_CA_PASSPHRASE_FILE
when given) before starting workers; the passphrase itself is never put into the environment.
It sets PKIFORGE_WAL_CHECKPOINTER when it checkpoints a SQLite WAL itself: the workers' own
automatic checkpoint is then only a fallback (store/checkpoint.py).
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI

from pkiforge import passphrase
from pkiforge.api.app import create_app, held_answers_database
from pkiforge.settings import load_settings
from pkiforge.store import checkpoint
from pkiforge.store.db import SqlStore
from pkiforge.wiring import build_pki


def app_from_env() -> FastAPI:
    home = Path(os.environ.get("PKIFORGE_HOME", "./pkiforge-data"))
    settings = load_settings(home, database_url=os.environ.get("PKIFORGE_DATABASE_URL"))
    background = os.environ.get(checkpoint.ENV) == "1"
    store = SqlStore.open(
        settings.effective_database_url,
        wal_autocheckpoint=checkpoint.FALLBACK_PAGES if background else None,
        # the app syncs the WAL for answered commits itself when it can (api/app.py)
        synchronous="normal" if held_answers_database(settings) else settings.sqlite_synchronous,
    )
    pki = build_pki(settings, lambda: passphrase.resolve(home, prompt=False), store=store)
    return create_app(settings, pki)
