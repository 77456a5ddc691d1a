"""`pkiforge keys ...` and `pkiforge request` through the real entry point."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from pkiforge.auth.algorithms import fingerprint
from tests.api.helpers import WHITELIST
from tests.api.server import Home, Server, env, make_home, start_server

from .conftest import Pkiforge

GENERATED = [
    ("ed25519", "ed25519"),
    ("ecdsa-p256", "ecdsa-p256-sha256"),
    ("ecdsa-p384", "ecdsa-p384-sha384"),
    ("rsa-pss-sha512", "rsa-pss-sha512"),
    ("rsa-v1_5-sha256", "rsa-v1_5-sha256"),
]


@pytest.mark.parametrize(("option", "algorithm"), GENERATED, ids=[g[0] for g in GENERATED])
def test_generate_writes_a_private_key_0600_a_public_key_and_metadata(
    pkiforge: Pkiforge, tmp_path: Path, option: str, algorithm: str
) -> None:
    args = ["keys", "generate", "--name", "shop", "--out-dir", str(tmp_path)]
    result = pkiforge(*args, "--algorithm", option, "--rsa-bits", "2048")
    assert result.code == 0, result.stderr
    key_file = tmp_path / "shop.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    private = serialization.load_pem_private_key(key_file.read_bytes(), None)
    public = serialization.load_pem_public_key((tmp_path / "shop.pub.pem").read_bytes())
    meta = json.loads((tmp_path / "shop.json").read_text())
    assert meta["algorithm"] == algorithm and meta["key_id"] is None
    assert meta["fingerprint"] == fingerprint(public) == fingerprint(private.public_key())  # type: ignore[arg-type]
    again = pkiforge(*args, "--algorithm", option)
    assert again.code == 5 and "--force" in again.stderr


def test_register_list_revoke_locally(pkiforge: Pkiforge, tmp_path: Path) -> None:
    pkiforge("keys", "generate", "--name", "web", "--out-dir", str(tmp_path))
    public = str(tmp_path / "web.pub.pem")
    shown = pkiforge(
        "keys", "register", "--public-key", public, "--name", "web-shop",
        "--email", "dev@shop.example", "--organization", "Shop", "--json",
    )  # fmt: skip
    assert shown.code == 0, shown.stderr
    key = json.loads(shown.stdout)
    assert json.loads((tmp_path / "web.json").read_text())["key_id"] == key["key_id"]
    listed = json.loads(pkiforge("keys", "list", "--name", "web-shop", "--json").stdout)
    assert [k["key_id"] for k in listed] == [key["key_id"]]
    assert key["key_id"][:12] in pkiforge("keys", "list").stdout
    revoked = pkiforge("keys", "revoke", "--reason", "rotated", "--json", "--", key["key_id"])
    assert json.loads(revoked.stdout)["status"] == "revoked"
    only_revoked = json.loads(pkiforge("keys", "list", "--status", "revoked", "--json").stdout)
    assert key["key_id"] in [k["key_id"] for k in only_revoked]


REFUSALS = [
    ("unknown-algorithm", ["keys", "generate", "--name", "x", "--algorithm", "dsa"], 3, "dsa"),
    ("unknown-key", ["keys", "revoke", "--reason", "r", "--", "nope"], 4, "no key"),
    (
        "missing-file",
        ["keys", "register", "--public-key", "/nonexistent", "--name", "x"],
        4,
        "/nonexistent does not exist",
    ),
]


@pytest.mark.parametrize(
    ("args", "code", "message"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS]
)
def test_refusals_are_one_line_with_an_exit_code(
    pkiforge: Pkiforge, tmp_path: Path, args: list[str], code: int, message: str
) -> None:
    if args[1] == "generate":
        args = [*args, "--out-dir", str(tmp_path)]
    result = pkiforge(*args)
    assert result.code == code, result.stderr
    assert result.stderr.startswith("error:") and message in result.stderr
    assert "Traceback" not in result.stderr


def test_the_same_public_key_twice_is_a_conflict(pkiforge: Pkiforge, tmp_path: Path) -> None:
    pkiforge("keys", "generate", "--name", "dup", "--out-dir", str(tmp_path))
    register = ["keys", "register", "--public-key", str(tmp_path / "dup.pub.pem"), "--name", "d"]
    assert pkiforge(*register).code == 0
    second = pkiforge(*register)
    assert second.code == 5 and "already registered" in second.stderr


# `pkiforge request` against a running server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Home, Server]]:
    home = make_home(tmp_path_factory.mktemp("request") / "home", WHITELIST)
    running = start_server(home)
    yield home, running
    running.stop()


def request(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pkiforge.cli", "request", *args],
        env=env(),
        capture_output=True,
        text=True,
        input=stdin,
        timeout=60,
    )


@pytest.mark.slow
def test_request_signs_like_curl_and_the_server_verifies(
    server: tuple[Home, Server], tmp_path: Path
) -> None:
    home, running = server
    home.cli("keys", "generate", "--name", "cli", "--out-dir", str(tmp_path), "--force")
    shown = home.cli("keys", "register", "--public-key", str(tmp_path / "cli.pub.pem"),
                     "--name", "cli", "--json")  # fmt: skip
    key_id = json.loads(shown.stdout)["key_id"]
    common = ["--key-id", key_id, "--private-key", str(tmp_path / "cli.key")]
    common += ["--cacert", str(home.root)]
    whoami = request("GET", f"{running.url}/api/v1/keys/whoami", *common)
    assert whoami.returncode == 0, whoami.stderr
    assert json.loads(whoami.stdout)["id"] == key_id
    (tmp_path / "body.json").write_text('{"reason": "done with it"}')
    revoke = request(
        "POST", f"{running.url}/api/v1/keys/{key_id}/revoke", *common,
        "-d", f"@{tmp_path / 'body.json'}", "-H", "X-Trace: 1", "--json",
    )  # fmt: skip
    answer = json.loads(revoke.stdout)
    assert (answer["status"], answer["body"]["revocation_reason"]) == (200, "done with it")
    refused = request("GET", f"{running.url}/api/v1/keys/whoami", *common, "-i")
    assert refused.returncode == 6
    assert refused.stdout.startswith("HTTP/1.1 401") and "key revoked" in refused.stdout


def test_request_refuses_a_bad_header_before_sending(tmp_path: Path) -> None:
    key = tmp_path / "k.key"
    key.write_bytes(b"not a key")
    result = request("GET", "https://127.0.0.1:1/", "--key-id", "k", "--private-key", str(key),
                     "-H", "no colon")  # fmt: skip
    assert result.returncode == 3 and "Name: value" in result.stderr
