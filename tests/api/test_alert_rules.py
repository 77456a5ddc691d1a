"""deploy/prometheus: promtool accepts the rules and their unit tests pass, and every metric a
rule uses is one that a running server's /metrics declares."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from .server import Server

RULES_DIR = Path(__file__).parents[2] / "deploy" / "prometheus"
RULES = RULES_DIR / "pkiforge-rules.yml"
# PromQL words that are not metric names: aggregations, set operators, modifiers
KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "bool", "offset", "inf", "nan",
}  # fmt: skip


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is missing: run scripts/system-tools.sh (Debian's prometheus)")
    return path


def expressions() -> list[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (a small PromQL lexer: enough for our rules)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # label values
    expr = re.sub(r"\{[^}]*\}", " ", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", " ", expr)  # ranges
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    names = set()
    for match in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr):
        word = match.group()
        if word.lower() in KEYWORDS or expr[match.end() :].lstrip().startswith("("):
            continue  # a keyword or a function
        names.add(word)
    return names


def test_promtool_accepts_the_rules_and_their_unit_tests_pass() -> None:
    tool = promtool()
    check = subprocess.run([tool, "check", "rules", str(RULES)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    tests = subprocess.run(
        [tool, "test", "rules", "pkiforge-rules.test.yml"],
        capture_output=True,
        text=True,
        cwd=RULES_DIR,
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr


def test_the_lexer_finds_metric_names_only() -> None:
    expr = 'sum by (instance) (rate(a_total{outcome=~"x|y"}[5m])) > 1 and on (job) b < 2 * c'
    assert metric_names(expr) == {"a_total", "b", "c"}


@pytest.mark.slow  # a server of its own
def test_every_metric_a_rule_uses_is_served(https_server: Server) -> None:
    with https_server.client() as client:
        exposition = client.get("/metrics").text
    served: set[str] = set()
    for family in text_string_to_metric_families(exposition):
        served.add(family.name)
        served.update(sample.name for sample in family.samples)
        if family.type == "counter":  # declared even before its first sample
            served.add(family.name + "_total")
    used = set().union(*(metric_names(expr) for expr in expressions()))
    assert {"pkiforge_ready", "pkiforge_storage_free_bytes"} <= used
    assert used - served == set()
