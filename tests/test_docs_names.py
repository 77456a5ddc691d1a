"""The files and modules the README and the docs name in code spans exist, so a page cannot
keep describing a module that was moved or removed. docs/performance.md and docs/benchmarks.md
are records of measurements, which name the code as it was when measured; they are left out."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "pkiforge"
RECORDS = {"performance.md", "benchmarks.md"}
PAGES = [ROOT / "README.md"] + [
    p for p in sorted((ROOT / "docs").glob("*.md")) if p.name not in RECORDS
]

SPAN = re.compile(r"`([^`\n]+)`")
PATH = re.compile(r"(?:pkiforge/)?((?:[a-z_]+/)*[a-z_]+\.py)")
MODULE = re.compile(r"pkiforge(?:\.[a-z_]+)+(?:\.[A-Z]\w*)?")
TOP = ("tests/", "bench/", "scripts/")
FILES = {"db", "json", "lock", "md", "pem", "toml", "yaml", "yml"}  # `pkiforge.db` is a file


def named(text: str) -> set[str]:
    """Paths (`store/db.py`, `tests/x.py`) and dotted modules (`pkiforge.auth`) in code spans."""
    spans = [m.group(1).strip() for m in SPAN.finditer(text)]
    modules = {s for s in spans if MODULE.fullmatch(s) and s.rpartition(".")[2] not in FILES}
    return {s for s in spans if PATH.fullmatch(s)} | modules


def exists(name: str) -> bool:
    """A path under the repository (tests/, bench/, scripts/) or src/pkiforge/; a module, or a
    module's attribute (`pkiforge.client.SigningAuth`), whose file or package is there."""
    if m := PATH.fullmatch(name):
        path = m.group(1)
        return (ROOT / path).is_file() if path.startswith(TOP) else (PACKAGE / path).is_file()
    parts = name.split(".")[1:]
    for n in range(len(parts), 0, -1):
        base = PACKAGE.joinpath(*parts[:n])
        source = (
            base.with_suffix(".py") if base.with_suffix(".py").is_file() else base / "__init__.py"
        )
        if source.is_file():
            if n == len(parts):
                return True
            # one name inside the module: defined or imported there
            return (
                n == len(parts) - 1
                and re.search(rf"\b{parts[-1]}\b", source.read_text()) is not None
            )
    return False


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_named_code_exists(page: Path) -> None:
    missing = sorted(n for n in named(page.read_text(encoding="utf-8")) if not exists(n))
    assert not missing, f"{page.relative_to(ROOT)} names code that is not there: {missing}"


def test_names_are_found_and_checked() -> None:
    text = (
        "`store/db.py` `pkiforge/auth/compat.py` `pkiforge.client` `tests/test_locks.py` `x`"
        " `pkiforge.db` `pkiforge.client.SigningAuth(key_id)`"
    )
    assert named(text) == {
        "store/db.py", "pkiforge/auth/compat.py", "pkiforge.client", "tests/test_locks.py",
    }  # fmt: skip
    assert all(exists(n) for n in named(text))
    assert not exists("store/gone.py")
    assert not exists("pkiforge.nowhere")
    assert not exists("tests/nowhere.py")
    assert exists("pkiforge.client.SigningAuth")
    assert exists("pkiforge.store.key_repos.SqlKeyRepository")
    assert not exists("pkiforge.client.NoSuchThing")
    assert not exists("pkiforge.client.a.b")
