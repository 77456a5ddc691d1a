"""Files the settings name (webhook secrets) travel with a backup, and `serve` checks them
before it says it serves: a restored home serves as the old one did."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.api.server import Home, env, free_port, make_home, start_server
from tests.notify.receiver import receiving


def _config(inside: str, outside: Path, url: str) -> dict[str, object]:
    return {
        "notifications": {
            "webhooks": [
                {"name": "ops", "url": url, "secret_file": inside},
                {"name": "audit", "url": url, "secret_file": str(outside)},
            ]
        }
    }


@pytest.mark.slow  # init, backup, restore and a server
def test_a_restored_home_keeps_its_webhook_secret_and_serves(tmp_path: Path) -> None:
    with receiving() as receiver:
        outside = tmp_path / "elsewhere" / "audit.secret"
        outside.parent.mkdir()
        outside.write_text(receiver.secret)
        home = make_home(
            tmp_path / "home", {"services": []}, _config("ops.secret", outside, receiver.url)
        )
        (home.path / "ops.secret").write_text(receiver.secret)
        key = tmp_path / "backup.key"
        key.write_text("cd" * 32 + "\n")
        archive = tmp_path / "a.pkb"

        made = home.cli("backup", "create", "--out", str(archive), "--backup-key-file", str(key))
        # the secret outside the home is not in the backup, and the operator is told by name
        assert f"webhook 'audit' secret_file: {outside.resolve()} (outside the home)" in made.stderr
        assert "'ops'" not in made.stderr

        restored = Home(tmp_path / "restored")
        done = home.cli("backup", "restore", str(archive), "--home", str(restored.path),
                        "--backup-key-file", str(key))  # fmt: skip
        assert "webhook 'audit' secret_file" in done.stderr
        secret = restored.path / "ops.secret"
        assert secret.read_text() == receiver.secret
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
        restored.root.write_text(home.root.read_text())

        server = start_server(restored)
        try:
            with server.client() as c:
                assert c.get("/readyz").status_code == 200
        finally:
            server.stop()


def test_serve_refuses_an_unreadable_webhook_secret_before_it_says_it_serves(
    tmp_path: Path,
) -> None:
    home = make_home(
        tmp_path / "home",
        {"services": []},
        _config("ops.secret", tmp_path / "absent.secret", "https://hooks.invalid/"),
    )
    proc = subprocess.run(
        [sys.executable, "-m", "pkiforge.cli", "--home", str(home.path), "serve",
         "--port", str(free_port())],
        env=env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 3, proc.stderr
    assert "webhook 'ops': cannot read its secret_file" in proc.stderr
    assert "serving" not in proc.stderr + proc.stdout
