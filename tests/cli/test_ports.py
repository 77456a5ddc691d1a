"""Ports: every port option and setting takes 1-65535, and a taken port fails the same way
with one worker or many."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from pkiforge.errors import Conflict, InvalidInput
from pkiforge.server.listener import listening_socket
from tests.api.helpers import WHITELIST
from tests.api.server import Home, env, free_port, make_home

from .conftest import cli_commands, options_of

OUT_OF_RANGE = ["0", "-1", "65536", "70000"]


def port_options() -> list[tuple[str, str]]:
    """(command, option) for every option of the CLI named `--port` or `--...-port`."""
    return [
        (name, option)
        for name, command in cli_commands()
        for option in sorted(options_of(command))
        if re.fullmatch(r"--([a-z-]+-)?port", option)
    ]


def pkiforge(home: Path, *args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pkiforge.cli", "--home", str(home), *args],
        env=env(extra_env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_cli_has_port_options() -> None:
    assert ("serve", "--port") in port_options()


@pytest.mark.parametrize("value", OUT_OF_RANGE)
@pytest.mark.parametrize(("command", "option"), port_options())
def test_a_port_option_out_of_range_is_a_usage_error(
    tmp_path: Path, command: str, option: str, value: str
) -> None:
    result = pkiforge(tmp_path, *command.split(), f"{option}={value}")
    assert result.returncode == 2, result.stderr
    assert f"Invalid value for '{option}'" in result.stderr
    assert "serving" not in result.stderr and "Traceback" not in result.stderr


FILE = "config.yaml: server.port: Input should be"
CONFIGS = [
    ("file-high", {"server": {"port": 70000}}, {}, f"{FILE} less than or equal to 65535"),
    ("file-zero", {"server": {"port": 0}}, {}, f"{FILE} greater than or equal to 1"),
    ("env", {}, {"PKIFORGE_SERVER__PORT": "65536"}, "PKIFORGE_SERVER__PORT: Input should be less"),
]  # fmt: skip


@pytest.mark.parametrize("command", ["serve", "run"])
@pytest.mark.parametrize(
    ("config", "environment", "message"), [c[1:] for c in CONFIGS], ids=[c[0] for c in CONFIGS]
)
def test_a_port_setting_out_of_range_is_a_config_error(
    tmp_path: Path, command: str, config: dict[str, object], environment: dict[str, str],
    message: str,
) -> None:  # fmt: skip
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    result = pkiforge(tmp_path, command, **environment)
    assert result.returncode == 3, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], lines
    assert not (tmp_path / "pkiforge.db").exists()  # refused before anything was made


@pytest.mark.parametrize("port", [0, -1, 65536, 70000])
def test_listening_socket_refuses_a_port_out_of_range(port: int) -> None:
    with pytest.raises(InvalidInput, match=f"port {port} is outside 1-65535") as info:
        listening_socket("127.0.0.1", port)
    assert info.value.field == "port"


def test_listening_socket_names_a_taken_address() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(Conflict, match=f"cannot listen on 127.0.0.1:{port}: Address"):
            listening_socket("127.0.0.1", port)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Home]:
    yield make_home(tmp_path_factory.mktemp("ports") / "home", WHITELIST)


@pytest.mark.slow
def test_a_taken_port_fails_the_same_with_one_worker_or_many(home: Home) -> None:
    port = free_port()
    results = {}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        for workers in ("1", "3"):
            results[workers] = pkiforge(
                home.path, "serve", "--port", str(port), "--workers", workers
            )
    expected = f"error: cannot listen on 127.0.0.1:{port}: Address already in use"
    for workers, result in results.items():
        assert result.returncode == 5, (workers, result.stderr)
        assert result.stderr.strip().splitlines() == [expected], (workers, result.stderr)
