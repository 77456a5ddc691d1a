"""Usage errors through the installed `pkiforge` script: one line, a `--help` hint, exit 2."""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

import pytest
import typer
from packaging.requirements import Requirement

from pkiforge.cli import usage
from pkiforge.cli.main import app
from tests.cli.conftest import Pkiforge, make_runner

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bare(workdir: Path) -> Pkiforge:
    """No CA: a usage error is found before any data directory is opened."""
    return make_runner(workdir / "none", workdir)


USAGE_CASES = [
    (["cert", "isue"], "No such command 'isue'", "pkiforge cert"),
    (["nosuch"], "No such command 'nosuch'", "pkiforge"),
    ([], "Missing command", "pkiforge"),  # the runner gives --home: options, but no command
    (["cert", "list", "--bogus"], "--bogus", "pkiforge cert list"),
    (["--bogus", "cert", "list"], "--bogus", "pkiforge"),
    (["cert", "show"], "Missing argument", "pkiforge cert show"),
    (["crl", "generate"], "Missing option '--issuer'", "pkiforge crl generate"),
    (["cert", "list", "--status", "shiny"], "'shiny' is not one of", "pkiforge cert list"),
    (["cert", "list", "--limit", "many"], "'--limit'", "pkiforge cert list"),
    (["cert", "list", "--limit", "0"], "'--limit'", "pkiforge cert list"),
    (["cert", "export", "abc", "--out", "x", "--format", "zip"], "'zip'", "pkiforge cert export"),
]


@pytest.mark.parametrize(
    ("args", "message", "command"),
    USAGE_CASES,
    ids=[" ".join(c[0]) or "no-command" for c in USAGE_CASES],
)
def test_usage_error_is_one_line_and_a_hint(
    bare: Pkiforge, workdir: Path, args: list[str], message: str, command: str
) -> None:
    r = bare(*args)
    assert r.code == 2, (r.code, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 2, r.stderr
    assert lines[0].startswith("error: ") and message in lines[0]
    assert lines[1] == f"Try '{command} --help' for help."
    assert r.stdout == ""
    assert not (workdir / "none").exists()


@pytest.mark.parametrize("args", [["cert"], ["ca"]], ids=["cert", "ca"])
def test_a_group_without_its_command_shows_its_help(bare: Pkiforge, args: list[str]) -> None:
    r = bare(*args)
    assert r.code in (0, 2)  # click before 8.2 exits 0 here, later versions 2
    assert "Usage: pkiforge" in r.stdout + r.stderr and "Traceback" not in r.stderr


def test_help_and_version_exit_0(bare: Pkiforge) -> None:
    assert bare("--version").code == 0
    r = bare("cert", "issue", "--help")
    assert r.code == 0 and "--csr" in r.stdout


def test_the_usage_error_class_is_the_one_typer_raises() -> None:
    """The assumption `cli/usage.py` rests on, checked against the Typer installed here."""
    with pytest.raises(usage.USAGE_ERROR) as raised:
        app(["cert", "isue"], standalone_mode=False)
    assert isinstance(raised.value, usage.CLICK_EXCEPTION)
    assert type(raised.value).__module__ in ("click.exceptions", "typer._click.exceptions")
    assert issubclass(typer.BadParameter, usage.USAGE_ERROR)


def test_installed_typer_is_within_the_tested_range() -> None:
    """pyproject bounds Typer to the releases this handling was tried with."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (spec,) = [Requirement(d) for d in project["dependencies"] if d.startswith("typer")]
    assert spec.specifier, "typer must stay bounded to the tested releases"
    assert any(s.operator == "<" for s in spec.specifier)
    assert spec.specifier.contains(importlib.metadata.version("typer"))


REQUEST = ["request", "GET", "https://127.0.0.1:1/", "--key-id", "k", "--private-key", "k.pem"]
AGENT = ["agent", "--cert", "c.pem", "--key", "k.pem", "--server", "https://127.0.0.1:1"]
EXCLUSIVE = [
    (["cert", "issue", "--csr", "a.csr", "--cn", "a.internal"], "--csr and --cn"),
    (["cert", "issue", "--csr", "a.csr", "--key-out", "a.key"], "--csr and --key-out"),
    (["cert", "issue", "--csr", "a.csr", "--key-type", "p384"], "--csr and --key-type"),
    (["cert", "issue", "--out", "a.pem"], "give either --csr FILE, or --cn NAME"),
    (["cert", "issue", "--cn", "a.internal"], "--cn needs --key-out"),
    (["cert", "show", "abcdef12", "--json", "--pem"], "--json and --pem"),
    (["cert", "export", "abcdef12", "--out", "x", "--key", "k.pem"], "--key goes with"),
    (
        ["ca", "create-intermediate", "edge", "--csr-out", "e.csr", "--root-key", "r.key"],
        "--csr-out and --root-key",
    ),
    (
        ["ca", "create-intermediate", "edge", "--csr-out", "e.csr", "--validity", "30d"],
        "--csr-out and --validity",
    ),
    (
        [*REQUEST, "--include", "--json"],
        "--include and --json",
    ),
    (
        [*AGENT, "--exec", "true", "--signal", "HUP"],
        "--exec and --signal",
    ),
    (
        [*AGENT, "--signal", "HUP"],
        "--signal and --pid-file go together",
    ),
]


@pytest.mark.parametrize(
    ("args", "message"),
    EXCLUSIVE,
    ids=[" ".join(c[0][:3]) + f"-{i}" for i, c in enumerate(EXCLUSIVE)],
)
def test_options_that_exclude_each_other_are_a_usage_error(
    pkiforge: Pkiforge, workdir: Path, args: list[str], message: str
) -> None:
    """Refused before any file is read or written, with the same one line and hint."""
    r = pkiforge(*args)
    assert r.code == 2, (r.code, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("error: ") and message in lines[0], r.stderr
    assert lines[1].startswith("Try 'pkiforge ") and lines[1].endswith(" --help' for help.")
    for name in ("a.key", "a.pem", "e.csr", "x"):
        assert not (workdir / name).exists()
