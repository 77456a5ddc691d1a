"""The README's code: every `from pkiforge ... import ...` in its code blocks works."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).parents[1] / "README.md"
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
IMPORT = re.compile(r"^(?:from pkiforge[\w.]* import (?:\([^)]*\)|.*)|import pkiforge.*)$", re.M)


def readme_imports() -> list[str]:
    """Each import statement of pkiforge in a fenced block, comments removed."""
    blocks = FENCE.findall(README.read_text(encoding="utf-8"))
    return [m.group(0).split("#", 1)[0].strip() for b in blocks for m in IMPORT.finditer(b)]


def test_the_readme_shows_imports() -> None:
    assert "from pkiforge.client import SigningAuth" in readme_imports()


@pytest.mark.parametrize("statement", readme_imports())
def test_readme_import_works(statement: str) -> None:
    exec(compile(statement, "README.md", "exec"), {})  # the README's own lines
