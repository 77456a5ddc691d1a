"""What `pkiforge serve` hands its serving processes: the settings and where the passphrase
is, never the passphrase, and nothing through environment variables of its own."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from pkiforge.settings import load_settings
from pkiforge.wiring import ServingApp
from tests.api.conftest import HTTPS_WHITELIST
from tests.api.helpers import make_csr
from tests.api.server import PASSPHRASE, make_home, start_server

NAMES = ["billing.internal"]
SECRET = "serving-app-passphrase-0123456789"


def test_a_serving_app_pickles_without_the_passphrase(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PKIFORGE_CA_PASSPHRASE", SECRET)
    monkeypatch.setenv("PKIFORGE_SERVER__PORT", "9444")
    file = tmp_path / "passphrase"
    file.write_text(SECRET)
    app = ServingApp(load_settings(tmp_path), file, checkpointed=True)
    data = pickle.dumps(app)
    assert SECRET.encode() not in data
    back = pickle.loads(data)
    # what the worker builds from: the settings as loaded here, env overrides included
    assert back.settings.server.port == 9444 and back.passphrase_file == file
    assert back.checkpointed


def test_workers_read_the_passphrase_from_the_file_serve_was_given(tmp_path: Path) -> None:
    """No passphrase in the environment: the workers unlock the CA key (to issue) from the
    `--passphrase-file` given to `serve`, as the CLI does."""
    home = make_home(tmp_path / "home", HTTPS_WHITELIST)
    file = tmp_path / "passphrase"
    file.write_text(PASSPHRASE + "\n")
    cert = home.client_cert("billing", "billing.internal")
    server = start_server(
        home,
        extra={"PKIFORGE_CA_PASSPHRASE": ""},
        args=("--workers", "2"),
        options=("--passphrase-file", str(file)),
    )
    try:
        with server.client(cert) as c:
            names = {"service_id": "billing", "service_name": "Billing", "names": NAMES}
            assert c.post("/api/v1/services/register", json=names).status_code == 201
        for _ in range(4):  # each a new connection, handed to one worker or the other
            with server.client(cert) as c:
                r = c.post(
                    "/api/v1/certificates/request",
                    json={"csr": make_csr("billing.internal", ["billing.internal"])},
                )
                assert r.status_code == 201, r.text
    finally:
        server.stop()
