"""Imports point one way: each package imports only what its layer may, and no modules import
each other in a circle. Read from the source with `ast` (nothing is imported), counting every
import statement: at module level, inside functions and under `if TYPE_CHECKING:` alike."""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "pkiforge"


@dataclass(frozen=True)
class Import:
    """One imported name as written (`pkiforge.ca.models`, `httpx`) and where."""

    importer: str
    name: str
    line: int

    def __str__(self) -> str:
        path = PACKAGE.parent / (self.importer.replace(".", "/") + ".py")
        if not path.exists():
            path = path.with_suffix("") / "__init__.py"
        return f"{path.relative_to(SRC)}:{self.line} imports {self.name}"


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(module: str, path: Path) -> Iterator[Import]:
    """Every import in the file; `from a import b` names `a.b` when `a.b` is one of our modules."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against this module's package
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                yield Import(module, sub if sub in modules() else base, node.lineno)


@cache
def all_imports() -> tuple[Import, ...]:
    return tuple(i for m, p in modules().items() for i in imports_of(m, p))


def within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


STDLIB = frozenset(sys.stdlib_module_names) | {"__future__"}


@dataclass(frozen=True)
class Rule:
    """Modules under `package` may not import `forbidden`, or only `allowed` when given."""

    package: str
    forbidden: tuple[str, ...] = ()
    allowed: tuple[str, ...] | None = None

    def breaks(self, imp: Import) -> bool:
        if not within(imp.importer, (self.package,)):
            return False
        if self.allowed is not None:
            top = imp.name.partition(".")[0]
            return top not in STDLIB and not within(imp.name, self.allowed)
        return within(imp.name, self.forbidden)


EDGES = ("pkiforge.api", "pkiforge.cli", "pkiforge.client", "pkiforge.server", "pkiforge.notify")
FRAMEWORKS = ("fastapi", "starlette", "sqlalchemy", "typer", "httpx", "redis")
RULES = {
    "ca/ is the core: no edges, settings, storage or frameworks": Rule(
        "pkiforge.ca",
        forbidden=(*EDGES, "pkiforge.settings", "pkiforge.store", *FRAMEWORKS),
    ),
    "scheduler/ is core too: no edges, settings, storage or frameworks": Rule(
        "pkiforge.scheduler",
        forbidden=(*EDGES, "pkiforge.settings", "pkiforge.store", *FRAMEWORKS),
    ),
    "acme/ is the ACME protocol's core: no edges, settings, storage or frameworks": Rule(
        "pkiforge.acme",
        forbidden=(*EDGES, "pkiforge.settings", "pkiforge.store", *FRAMEWORKS),
    ),
    "x509/ is pure X.509: itself, errors, clock and cryptography": Rule(
        "pkiforge.x509",
        allowed=("pkiforge.x509", "pkiforge.errors", "pkiforge.clock", "cryptography"),
    ),
    "auth/ stands alone, usable by any ASGI app": Rule(
        "pkiforge.auth",
        forbidden=(
            "pkiforge.ca",
            "pkiforge.store",
            "pkiforge.api",
            "pkiforge.cli",
            "pkiforge.client",
        ),
    ),
    "api/ does not reach into the client, the CLI or the server that hosts it": Rule(
        "pkiforge.api", forbidden=("pkiforge.client", "pkiforge.cli", "pkiforge.server")
    ),
    "backup/ works below the edges: the CLI calls it, never the reverse": Rule(
        "pkiforge.backup", forbidden=EDGES
    ),
    "notify/ only sends what the core recorded: no store, settings or other edge": Rule(
        "pkiforge.notify",
        forbidden=(
            "pkiforge.store",
            "pkiforge.settings",
            "pkiforge.api",
            "pkiforge.cli",
            "pkiforge.client",
            "pkiforge.server",
        ),
    ),
    "client/ is a library for services: no server side": Rule(
        "pkiforge.client",
        forbidden=(
            "pkiforge.ca",
            "pkiforge.store",
            "pkiforge.api",
            "pkiforge.cli",
            "pkiforge.server",
        ),
    ),
}


def violations(rule: Rule, imports: tuple[Import, ...]) -> list[str]:
    return [str(i) for i in imports if rule.breaks(i)]


@pytest.mark.parametrize("rule", RULES.values(), ids=RULES.keys())
def test_layer_rule(rule: Rule) -> None:
    assert rule.package in modules(), f"{rule.package} is gone: update the rule"
    found = violations(rule, all_imports())
    assert not found, f"{rule.package} breaks its import rule:\n  " + "\n  ".join(found)


def cycles(imports: tuple[Import, ...]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    graph: dict[str, set[str]] = {m: set() for m in modules()}
    for i in imports:
        if i.name in graph and i.name != i.importer:
            graph[i.importer].add(i.name)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle() -> None:
    found = cycles(all_imports())
    assert not found, "modules import each other in a circle:\n  " + "\n  ".join(
        " <-> ".join(c) for c in found
    )


def test_the_checks_catch_a_planted_violation() -> None:
    """The rules and the cycle search are live: fed a bad import, each reports it."""
    planted = (
        Import("pkiforge.auth.mtls", "pkiforge.ca.models", 1),
        Import("pkiforge.x509.names", "idna", 1),
        Import("pkiforge.errors", "pkiforge.clock", 1),
        Import("pkiforge.clock", "pkiforge.errors", 1),
    )
    assert violations(RULES["auth/ stands alone, usable by any ASGI app"], planted)
    assert violations(RULES["x509/ is pure X.509: itself, errors, clock and cryptography"], planted)
    assert cycles(planted) == [["pkiforge.clock", "pkiforge.errors"]]


def test_no_source_reads_dependency_overrides() -> None:
    """Tests override dependencies the FastAPI way; production code never looks at them."""
    found = [
        f"{path.relative_to(SRC)}:{node.lineno}"
        for path in modules().values()
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.Attribute) and node.attr == "dependency_overrides"
    ]
    assert not found, f"a test seam in src: {found}"
