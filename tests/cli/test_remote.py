"""Every CLI command that calls a server, run against a real HTTPS server that checks mTLS.

The commands are collected from the CLI itself (each one with `--server`, plus `request`,
which takes a URL and `--cacert`), so a new remote command fails
`test_every_remote_command_has_arguments` until it is added to `ARGUMENTS` and run here.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import certifi
import pytest

from tests.api.helpers import WHITELIST
from tests.api.server import Home, Server, env, make_home, start_server

from .conftest import cli_commands, options_of

pytestmark = pytest.mark.slow

# options that make a command talk to a server: `--server`, or `--cacert` for `request URL`
REMOTE_OPTIONS = frozenset({"--server", "--cacert"})


def remote_commands() -> list[str]:
    """Every command of the CLI that takes a remote option, found by walking its tree."""
    return [name for name, command in cli_commands() if options_of(command) & REMOTE_OPTIONS]


@dataclass
class Remote:
    """A running server, a client certificate it accepts, and what the commands need."""

    home: Home
    server: Server
    client_home: Path  # an empty data directory: a command that fell back to it would fail
    admin: tuple[str, str]  # the `ops` service (admin): may manage keys
    files: Path

    def mtls(self) -> list[str]:
        return ["--server", self.server.url, "--cert", self.admin[0], "--key", self.admin[1],
                "--cacert", str(self.home.root)]  # fmt: skip

    def public_key(self, name: str) -> str:
        self.home.cli("keys", "generate", "--name", name, "--out-dir", str(self.files))
        return str(self.files / f"{name}.pub.pem")

    def registered_key(self, name: str) -> str:
        """A key registered over mTLS with a plain httpx client (not the code under test)."""
        pem = Path(self.public_key(name)).read_text()
        with self.server.client(self.admin) as http:
            answer = http.post("/api/v1/keys", json={"public_key": pem, "client_name": name})
        assert answer.status_code == 201, answer.text
        return str(answer.json()["key_id"])

    def service_pair(self, service: str) -> list[str]:
        """A copy of a fresh certificate and key of `service`, as an agent would keep them."""
        cert, key = self.home.client_cert(service, f"{service}.internal")
        folder = self.files / service
        folder.mkdir(exist_ok=True)
        shutil.copy(cert, folder / "tls.pem")
        shutil.copy(key, folder / "tls.key")
        return ["--cert", str(folder / "tls.pem"), "--key", str(folder / "tls.key")]

    def token(self, service: str) -> str:
        shown = self.home.cli("token", "create", "--service", service, "--json")
        return str(json.loads(shown.stdout)["token"])


ARGUMENTS: dict[str, Callable[[Remote], list[str]]] = {
    "keys register": lambda r: [
        "--public-key", r.public_key("reg"), "--name", "reg", "--json", *r.mtls()
    ],
    "keys list": lambda r: ["--json", *r.mtls()],
    "keys revoke": lambda r: [
        "--reason", "rotated", "--json", *r.mtls(), "--", r.registered_key("rev")
    ],
    "agent": lambda r: [
        "--server", r.server.url, *r.service_pair("billing"), "--ca", str(r.home.root),
        "--once", "--renew-before", "3650d", "--attempts", "1",
    ],
    "enroll": lambda r: [
        "--server", r.server.url, "--token", r.token("test-enroll"),
        "--name", "test-enroll.test.internal",
        "--cert", str(r.files / "enrolled.pem"), "--key", str(r.files / "enrolled.key"),
        "--ca", str(r.home.root),
    ],
    "request": lambda r: _signed_whoami(r),
}  # fmt: skip


def _signed_whoami(r: Remote) -> list[str]:
    """`request`: a signed call that also presents the client certificate."""
    key_id = r.registered_key("req")
    return ["GET", f"{r.server.url}/api/v1/keys/whoami", "--key-id", key_id,
            "--private-key", str(r.files / "req.key"), "--cacert", str(r.home.root),
            "--cert", r.admin[0], "--key", r.admin[1]]  # fmt: skip


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Remote]:
    base = tmp_path_factory.mktemp("remote")
    home = make_home(base / "home", WHITELIST)
    running = start_server(home)
    files = base / "files"
    files.mkdir()
    try:
        yield Remote(home, running, base / "client", home.client_cert("ops", "ops.internal"), files)
    finally:
        running.stop()


def pkiforge(remote: Remote, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pkiforge.cli", "--home", str(remote.client_home), *args],
        env=env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_every_remote_command_has_arguments() -> None:
    commands = remote_commands()
    assert {"keys register", "keys list", "keys revoke", "agent", "enroll"} <= set(commands)
    missing = sorted(set(commands) - set(ARGUMENTS))
    assert not missing, f"add these remote commands to ARGUMENTS: {missing}"
    assert not set(ARGUMENTS) - set(commands), "ARGUMENTS names a command the CLI lacks"


@pytest.mark.parametrize("command", remote_commands())
def test_each_remote_command_succeeds_over_mtls(remote: Remote, command: str) -> None:
    if command not in ARGUMENTS:
        pytest.fail(f"{command!r} calls a server but has no arguments in ARGUMENTS")
    result = pkiforge(remote, *command.split(), *ARGUMENTS[command](remote))
    assert result.returncode == 0, result.stderr
    # a status 401, not the digits inside a hex serial or fingerprint the command prints
    assert not re.search(r"\b401\b", result.stdout + result.stderr), result.stdout
    assert not remote.client_home.exists(), "a remote command opened a local data directory"


def test_keys_list_agrees_with_curl_and_needs_the_client_certificate(remote: Remote) -> None:
    remote.registered_key("seen")
    listed = pkiforge(remote, "keys", "list", "--json", *remote.mtls())
    assert listed.returncode == 0, listed.stderr
    status, body = remote.server.curl("/api/v1/keys", cert=remote.admin)
    assert status == 200, body
    by_curl = [k["key_id"] for k in json.loads(body)["items"]]
    assert [k["key_id"] for k in json.loads(listed.stdout)] == by_curl
    without = ["--server", remote.server.url, "--cacert", str(remote.home.root)]
    refused = pkiforge(remote, "keys", "list", *without)
    assert refused.returncode == 6 and refused.stderr.startswith("error:"), refused.stderr
    assert remote.server.curl("/api/v1/keys")[0] == 401  # curl agrees: no certificate, no list


UNTRUSTED = 9  # docs/cli.md: the server's TLS certificate is not trusted


def test_the_server_certificate_is_verified_and_a_failure_says_so(remote: Remote) -> None:
    """Not "server unavailable": the verification failure, and the option that fixes it."""
    other = certifi.where()  # public roots: none of them issued this private CA's server
    mtls = ["--cert", remote.admin[0], "--key", remote.admin[1]]
    key_id = remote.registered_key("untrusted")
    for command in (
        ["keys", "list", "--server", remote.server.url, *mtls],
        ["request", "GET", f"{remote.server.url}/api/v1/keys/whoami", "--key-id", key_id,
         "--private-key", str(remote.files / "untrusted.key"), *mtls],
        ["agent", "--server", remote.server.url, *remote.service_pair("billing"), "--once",
         "--renew-before", "3650d", "--attempts", "1"],
    ):  # fmt: skip
        result = pkiforge(remote, *command, "--cacert", str(other))
        assert result.returncode == UNTRUSTED, (command[0], result.stderr)
        assert f"error: the server at {remote.server.url}" in result.stderr, result.stderr
        assert "is not trusted" in result.stderr and "unable to get local issuer" in result.stderr
        assert result.stderr.rstrip().endswith("with --cacert FILE"), result.stderr


USAGE = [
    ("key-without-cert", ["keys", "list", "--server", "https://127.0.0.1:1", "--key", "k.key"],
     "'--key': needs --cert"),
    ("cert-without-server", ["keys", "list", "--cert", "c.pem"], "'--cert': only with --server"),
    ("cacert-without-server", ["keys", "revoke", "--reason", "r", "--cacert", "ca.pem", "k"],
     "'--cacert': only with --server"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "message"), [u[1:] for u in USAGE], ids=[u[0] for u in USAGE])
def test_tls_options_that_cannot_apply_are_usage_errors(
    remote: Remote, args: list[str], message: str
) -> None:
    result = pkiforge(remote, *args)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_a_missing_tls_file_is_named(remote: Remote, tmp_path: Path) -> None:
    args = ["--server", remote.server.url, "--cacert", str(remote.home.root)]
    missing = tmp_path / "nope.pem"
    result = pkiforge(remote, "keys", "list", *args, "--cert", str(missing))
    assert result.returncode == 3, result.stderr
    assert result.stderr.strip() == f"error: --cert {missing}: no such file"


def test_unusable_tls_files_are_a_clear_error(remote: Remote) -> None:
    wrong_key = str(Path(__file__).parents[1] / "data" / "key-p256.pem")
    args = ["--server", remote.server.url, "--cacert", str(remote.home.root)]
    result = pkiforge(remote, "keys", "list", *args, "--cert", remote.admin[0], "--key", wrong_key)
    assert result.returncode == 3 and "KEY_VALUES_MISMATCH" in result.stderr, result.stderr
