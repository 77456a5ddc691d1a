"""docs/http-api.md's endpoint table names every route the app serves, and nothing it does
not: read from the page and from the app's own routes."""

from __future__ import annotations

import re
from pathlib import Path

from .helpers import Api

DOC = Path(__file__).resolve().parents[2] / "docs" / "http-api.md"
PREFIX = "/api/v1"
TOP = {"healthz", "readyz", "metrics", "ca", "crl", "ocsp", "whoami", "certificates",
       "services", "discovery", "keys"}  # fmt: skip


def _normal(path: str) -> str:
    """`{serial}`, `{base64}`, `{id}` alike; no query, no `[...]` option."""
    path = re.sub(r"\[[^]]*\]", "", path).split("?", 1)[0]
    return re.sub(r"\{[^}]*\}", "{}", path).rstrip("/") or "/"


def documented() -> set[str]:
    """The paths in the table's first column, each relative one (`/download` after
    `/certificates/{serial}`) joined to the full path before it."""
    text = DOC.read_text()
    table = text[text.index("## Endpoints") :]
    table = table[: table.index("\n\n", table.index("| --- |"))]
    found: set[str] = set()
    for row in table.splitlines():
        if not row.startswith("| `"):
            continue  # the heading, the header row, its rule
        cell = row.split("|")[1]
        base = ""
        for code in re.findall(r"`([^`]*)`", cell):
            for token in re.findall(r"/[^\s,`]*", code):
                path = _normal(token)
                if path.split("/")[1] in TOP:
                    base = path
                else:
                    path = base + path
                found.add(path)
    return found


def served(api: Api) -> set[str]:
    """The app's routes, as its OpenAPI document lists them (what clients are told)."""
    paths = set()
    for path in api.app.openapi()["paths"]:
        paths.add(_normal(path.removeprefix(PREFIX)))
    return paths


async def test_the_endpoint_table_names_every_route(api: Api) -> None:
    table, routes = documented(), served(api)
    wildcards = {p.removesuffix("/*") for p in table if p.endswith("/*")}

    def covered(path: str) -> bool:
        return path in table or any(path.startswith(w + "/") or path == w for w in wildcards)

    missing = sorted(p for p in routes if not covered(p))
    assert not missing, f"routes missing from docs/http-api.md's endpoint table: {missing}"
    unknown = sorted(p for p in table - routes if not p.endswith("/*"))
    assert not unknown, f"the endpoint table names paths the app does not serve: {unknown}"
