"""The code the README and the docs show: every `from pkiforge ... import ...` in their code
blocks works."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
README = ROOT / "README.md"
PAGES = sorted((ROOT / "docs").glob("*.md"))
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
IMPORT = re.compile(r"^(?:from pkiforge[\w.]* import (?:\([^)]*\)|.*)|import pkiforge.*)$", re.M)


def imports(page: Path) -> list[str]:
    """Each import statement of pkiforge in a fenced block of `page`, comments removed."""
    blocks = FENCE.findall(page.read_text(encoding="utf-8"))
    return [m.group(0).split("#", 1)[0].strip() for b in blocks for m in IMPORT.finditer(b)]


def test_the_readme_shows_imports() -> None:
    assert "from pkiforge.client import SigningAuth" in imports(README)


def test_the_docs_show_imports() -> None:
    shown = {s for page in PAGES for s in imports(page)}
    assert "from pkiforge.auth.middleware import SignatureAuthMiddleware" in shown


CASES = [(page, s) for page in [README, *PAGES] for s in imports(page)]


@pytest.mark.parametrize(("page", "statement"), CASES, ids=[f"{p.name}:{s}" for p, s in CASES])
def test_shown_import_works(page: Path, statement: str) -> None:
    exec(compile(statement, str(page), "exec"), {})  # the page's own lines
