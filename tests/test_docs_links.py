"""Every link in README.md (and CHANGELOG.md) resolves: relative links name a file of the repo
and, with `#anchor`, a heading of it (GitHub's anchors); external links are well-formed, never
fetched. Links between the docs pages are checked by `mkdocs build --strict` in `make test`."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["README.md", "CHANGELOG.md"]

FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1", re.DOTALL)
INLINE = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(([^)]*)\)")
TITLE = re.compile(r"\s+\"[^\"]*\"$")
DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:[ \t]*<?([^\s>]+)>?(?:[ \t].*)?$", re.MULTILINE)
AUTOLINK = re.compile(r"<(https?://[^>\s]+)>")
HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.+?)[ \t#]*$", re.MULTILINE)
HTML_ANCHOR = re.compile(r"<a\s+(?:name|id)=\"([^\"]+)\"", re.IGNORECASE)


def prose(text: str) -> str:
    """The text without fenced blocks and code spans, where brackets are not links."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def links(text: str) -> list[str]:
    """Every link target of a Markdown text: inline, reference definitions, autolinks."""
    body = prose(text)
    found = [TITLE.sub("", m.group(1).strip()).strip("<>") for m in INLINE.finditer(body)]
    found += [m.group(1) for m in DEFINITION.finditer(body)]
    return found + [m.group(1) for m in AUTOLINK.finditer(body)]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text, lower-case, punctuation dropped, spaces to '-'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = re.sub(r"[`*]|<[^>]+>", "", text).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """The anchors a Markdown page offers: one per heading (repeats get -1, -2 ...), HTML ids."""
    seen: dict[str, int] = {}
    out = {m.group(1) for m in HTML_ANCHOR.finditer(text)}
    for m in HEADING.finditer(FENCE.sub("", text)):
        base = slug(m.group(1))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def problem(page: Path, target: str, root: Path) -> str | None:
    """Why `target`, linked from `page`, does not resolve; None when it does."""
    if not target or re.search(r"\s", target):
        return "malformed link (empty, or a space: write %20)"
    parts = urlsplit(target)
    if parts.scheme in ("http", "https"):
        ok = parts.netloc and " " not in target and not parts.netloc.startswith(".")
        return None if ok and re.fullmatch(r"[\w.-]+(:\d+)?", parts.netloc) else "malformed URL"
    if parts.scheme == "mailto":
        return None if "@" in parts.path else "malformed mailto"
    if parts.scheme or parts.netloc:
        return f"unexpected scheme {parts.scheme!r}"
    path = unquote(parts.path)
    if path.startswith("/"):
        return "absolute path: link relative to the page"
    file = (page.parent / path).resolve() if path else page
    if not file.is_relative_to(root):
        return "outside the repository"
    if not file.exists():
        return "no such file"
    if parts.fragment:
        if file.is_dir() or file.suffix != ".md":
            return "anchor into a file that is not Markdown"
        if unquote(parts.fragment) not in anchors(file.read_text(encoding="utf-8")):
            return f"{file.name} has no heading for #{parts.fragment}"
    return None


def broken(page: Path, root: Path = ROOT) -> list[str]:
    """Each link of `page` that does not resolve, with the reason."""
    text = page.read_text(encoding="utf-8")
    return [f"{t}: {why}" for t in links(text) if (why := problem(page, t, root)) is not None]


@pytest.mark.parametrize("name", PAGES)
def test_every_link_resolves(name: str) -> None:
    assert broken(ROOT / name) == []


def test_the_readme_links_into_the_docs_with_anchors() -> None:
    targets = links((ROOT / "README.md").read_text(encoding="utf-8"))
    assert any(t.startswith("docs/") and "#" in t for t in targets), targets
    assert "docs/cli.md#exit-codes" in targets


def test_headings_become_githubs_anchors() -> None:
    text = (
        "# pkiforge\n## 1. Enroll\n### pkiforge's `own` API\n## First: *tokens*\n"
        "## Twice\n## Twice\n```sh\n# not a heading\n```\n"
    )
    assert anchors(text) == {
        "pkiforge", "1-enroll", "pkiforges-own-api", "first-tokens", "twice", "twice-1",
    }  # fmt: skip


GOOD = (
    "[a](docs/page.md) [b](docs/page.md#a-heading) [c](#top) [d](https://example.org/x?y=1)\n"
    "<https://example.org> [e](docs/) `[not](a-link.md)`\n```\n[not](either.md)\n```\n"
    "[ref]: docs/page.md\n"
)
BAD = [
    ("[x](docs/missing.md)", "no such file"),
    ("[x](docs/page.md#no-such-heading)", "no heading for #no-such-heading"),
    ("[x](#nowhere)", "no heading for #nowhere"),
    ("[x](https://exa mple.org)", "malformed link"),
    ("[x](docs/my page.md)", "malformed link"),
    ("[x](https:///path)", "malformed URL"),
    ("[x](/etc/passwd)", "absolute path"),
    ("[x](../../outside.md)", "outside the repository"),
    ("[x](ftp://example.org/f)", "unexpected scheme"),
    ("[ref]: docs/gone.md", "no such file"),
]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "sub" / "docs").mkdir(parents=True)
    (tmp_path / "sub" / "docs" / "page.md").write_text("# Title\n\n## A heading\n")
    return tmp_path / "sub"


def test_good_links_pass(repo: Path) -> None:
    page = repo / "README.md"
    page.write_text("# Top\n\n" + GOOD)
    assert broken(page, repo) == []


@pytest.mark.parametrize(("line", "why"), BAD, ids=[b[0] for b in BAD])
def test_a_broken_link_is_named(repo: Path, line: str, why: str) -> None:
    page = repo / "README.md"
    page.write_text("# Top\n\n" + GOOD + line + "\n")
    (found,) = broken(page, repo)
    assert why in found
