"""A key output whose folder is missing is refused, never created: nothing half-written."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from tests.cli.conftest import PASSPHRASE, Pkiforge, make_runner

FAST = ["--root-key-type", "p256", "--intermediate-key-type", "p256"]
TOKEN = "pkf_0123456789abcdef." + "A" * 43
ENROLL = ["enroll", "--server", "https://127.0.0.1:1", "--token", TOKEN, "--name", "e.internal"]


def test_init_refuses_a_missing_root_key_folder_and_a_retry_succeeds(tmp_path: Path) -> None:
    home, usb = tmp_path / "home", tmp_path / "media" / "usb"
    run = make_runner(home, tmp_path, {"PKIFORGE_CA_PASSPHRASE": PASSPHRASE})
    r = run("init", *FAST, "--root-key-out", str(usb / "root.key"))
    assert r.code == 3, r.stderr
    assert r.stderr.strip() == (
        f"error: --root-key-out: folder {usb} does not exist; create it (or mount its medium) "
        "first: nothing was written"
    )
    assert not usb.exists() and not home.exists()

    usb.mkdir(parents=True)
    r = run("init", *FAST, "--root-key-out", str(usb / "root.key"))
    assert r.code == 0, r.stderr
    assert stat.S_IMODE((usb / "root.key").stat().st_mode) == 0o600
    assert not (home / "ca" / "root" / "key.pem").exists()
    assert run("ca", "show", "root", "--json").stdout.count('"key_location": "offline"') == 1


def test_init_refuses_a_bad_option_before_making_the_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    run = make_runner(home, tmp_path)
    for args in (["--root-key-type", "rsa1000"], ["--intermediate-name", "Not A Name"]):
        r = run("init", *args)
        assert r.code == 3, (args, r.stderr)
        assert not home.exists()


@pytest.mark.parametrize(
    "args",
    [
        ["cert", "issue", "--cn", "k.internal", "--key-out", "missing/k.key", "--out", "k.pem"],
        ["keys", "generate", "--name", "client", "--out-dir", "missing/keys"],
        [*ENROLL, "--cert", "e.pem", "--key", "missing/e.key", "--root-fingerprint", "00" * 32],
    ],
    ids=["cert-issue", "keys-generate", "enroll"],
)
def test_other_key_outputs_refuse_a_missing_folder(
    pkiforge: Pkiforge, workdir: Path, args: list[str]
) -> None:
    r = pkiforge(*args)
    assert r.code == 3, r.stderr
    assert "does not exist" in r.stderr and "missing" in r.stderr
    assert not (workdir / "missing").exists()
    assert not (workdir / "k.pem").exists() and not (workdir / "e.pem").exists()
