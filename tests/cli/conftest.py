"""Run the real `pkiforge` entry point in a subprocess against a throw-away data directory."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

PASSPHRASE = "cli-test-passphrase-0123456789"


def console_script() -> str:
    """The installed `pkiforge` entry point of this environment (what users run)."""
    found = shutil.which("pkiforge", path=str(Path(sys.executable).parent))
    assert found, f"no pkiforge console script next to {sys.executable}: pip install -e ."
    return found


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


Pkiforge = Callable[..., Result]


def make_runner(home: Path, cwd: Path, env_extra: dict[str, str] | None = None) -> Pkiforge:
    def run(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("PKIFORGE_")}
        full_env.update(env_extra or {})
        full_env.update(env or {})
        proc = subprocess.run(
            [console_script(), "--home", str(home), *args],
            cwd=cwd,
            env=full_env,
            capture_output=True,
            text=True,
            input=input,
            timeout=120,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    return run


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def pkiforge(workdir: Path) -> Pkiforge:
    """A CA initialised once per module (fast ECDSA keys), passphrase from the environment."""
    run = make_runner(workdir / "D", workdir, {"PKIFORGE_CA_PASSPHRASE": PASSPHRASE})
    result = run("init", "--root-key-type", "p384", "--intermediate-key-type", "p256")
    assert result.code == 0, result.stderr
    return run


def cli_commands() -> list[tuple[str, Any]]:
    """(name, click command) for every command of the `pkiforge` CLI, found by walking it."""
    import typer.main

    from pkiforge.cli.main import app

    found: list[tuple[str, Any]] = []

    def walk(command: Any, path: tuple[str, ...]) -> None:
        subcommands = getattr(command, "commands", None)
        if isinstance(subcommands, dict):  # a group
            for name, sub in sorted(subcommands.items()):
                walk(sub, (*path, name))
        else:
            found.append((" ".join(path), command))

    walk(typer.main.get_command(app), ())
    return found


def options_of(command: Any) -> set[str]:
    """Every option name (`--port`, `-H`, ...) a command takes."""
    return {name for param in getattr(command, "params", []) for name in param.opts}
