"""Every failure exits with a code from the CLI reference's table (docs/cli.md), and the table
matches the code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pkiforge import errors
from pkiforge.cli.output import EXIT_TABLE, UNEXPECTED, exit_code
from tests.cli.conftest import Pkiforge, make_runner

CLI_PAGE = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def documented_codes() -> dict[int, str]:
    """The rows of the table that follows "Every failure exits with one of these codes"."""
    text = CLI_PAGE.read_text(encoding="utf-8")
    start = text.index("Every failure exits with one of these codes")
    block = text[start:].split("\n\n", 2)[1]
    rows = [re.match(r"^\| (\d+) \| (.+) \|$", line) for line in block.splitlines()]
    return {int(m.group(1)): m.group(2) for m in rows if m}


def test_the_documented_table_lists_the_codes_the_cli_uses() -> None:
    assert set(documented_codes()) == set(EXIT_TABLE)


def _kinds(cls: type[errors.PkiError]) -> list[type[errors.PkiError]]:
    return [cls, *(k for sub in cls.__subclasses__() for k in _kinds(sub))]


@pytest.mark.parametrize("kind", _kinds(errors.PkiError)[1:], ids=lambda k: k.__name__)
def test_every_kind_of_error_has_its_own_documented_code(kind: type[errors.PkiError]) -> None:
    if kind is errors.RateLimited:
        exc: errors.PkiError = kind("x", retry_after=1)
    elif kind is errors.AcmeError:
        exc = errors.AcmeError("malformed", "x")
    else:
        exc = kind("x")
    assert exit_code(exc) in EXIT_TABLE and exit_code(exc) != UNEXPECTED


UNREACHABLE = "https://127.0.0.1:1"
FAILING = [
    (["cert", "isue"], 2),
    (["cert", "show"], 2),
    (["cert", "list", "--status", "shiny"], 2),
    (["cert", "issue", "--csr", "x.csr", "--cn", "x.internal"], 2),
    (["cert", "show", "zz"], 3),
    (["cert", "issue", "--csr", "missing.csr"], 4),
    (["cert", "list", "--expiring-within", "soon"], 3),
    (["cert", "show", "abcdef0123"], 4),
    (["ca", "show", "ghost"], 4),
    (["init"], 5),
    (["ca", "chain", "root", "--out", "."], 5),  # exists, no --force
    (["ca", "chain", "root", "--out", ".", "--force"], 3),  # a folder: cannot be written
    (["keys", "list", "--server", UNREACHABLE], 7),
    (["--database-url", "postgresql://nobody@127.0.0.1:1/none", "cert", "list"], 7),
]


@pytest.mark.parametrize(
    ("args", "code"), FAILING, ids=[" ".join(a[:3]) + f"-{i}" for i, (a, _) in enumerate(FAILING)]
)
def test_failing_commands_exit_with_a_documented_code(
    pkiforge: Pkiforge, args: list[str], code: int
) -> None:
    r = pkiforge(*args)
    assert r.code in documented_codes() and r.code != UNEXPECTED, (r.code, r.stderr)
    assert r.code == code, (r.code, r.stderr)
    assert r.stderr.startswith("error: ") and "Traceback" not in r.stderr


def test_more_failures_outside_a_ca(workdir: Path, pkiforge: Pkiforge) -> None:
    wrong = pkiforge(
        "cert",
        "issue",
        "--cn",
        "p.internal",
        "--key-out",
        "p.key",
        env={"PKIFORGE_CA_PASSPHRASE": "not-this-passphrase-at-all"},
    )
    missing_home = make_runner(workdir / "absent", workdir)("cert", "list")
    config = workdir / "bad-config"
    config.mkdir()
    (config / "config.yaml").write_text("ca: [1, 2]\n")
    bad_config = make_runner(config, workdir)("config", "show")
    for r, code in ((wrong, 6), (missing_home, 4), (bad_config, 3)):
        assert r.code == code and r.code in documented_codes(), (r.code, r.stderr)
