"""deploy/prometheus and deploy/grafana: promtool accepts the rules and their unit tests pass,
and every metric a rule or the dashboard uses is one that a running server's /metrics
declares, once its scheduler has run."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from .server import make_home, start_server

DEPLOY = Path(__file__).parents[2] / "deploy"
RULES_DIR = DEPLOY / "prometheus"
RULES = RULES_DIR / "pkiforge-rules.yml"
DASHBOARD = DEPLOY / "grafana" / "pkiforge.json"
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


def dashboard_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, those inside collapsed rows too."""
    found = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dashboard_panels(dashboard) for t in p.get("targets", [])]


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (a small PromQL lexer: enough for our rules)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # label values
    expr = re.sub(r"\{[^}]*\}", " ", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", " ", expr)  # ranges (and Grafana's $__rate_interval in them)
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


def test_the_lexer_skips_grafana_variables_and_quantiles() -> None:
    expr = (
        "histogram_quantile(0.99, sum by (le, route) (rate(x_bucket[$__rate_interval])))"
        " - time() < on () group_left () max (y)"
    )
    assert metric_names(expr) == {"x_bucket", "y"}


@pytest.mark.slow  # a server of its own, whose scheduler runs every job once
def test_every_metric_a_rule_or_the_dashboard_uses_is_served(tmp_path: Path) -> None:
    hook = {"name": "ops", "url": "http://127.0.0.1:9/hook", "secret": "whsec_" + "A" * 44}
    config = {"scheduler": {"tick": 1}, "notifications": {"webhooks": [hook]}}
    home = make_home(tmp_path / "home", {"services": []}, config)
    server = start_server(home)
    try:

        def scrape() -> dict[str, Any]:
            with server.client() as client:
                text = client.get("/metrics").text
            return {f.name: f for f in text_string_to_metric_families(text)}

        def sampled(families: dict[str, Any], name: str, label: str) -> set[str]:
            family = families.get(name)
            return {s.labels[label] for s in family.samples} if family is not None else set()

        jobs = {"crl-refresh", "ocsp-refresh", "expiry-scan", "ca-expiry", "tidy", "notify"}
        deadline = time.monotonic() + 60
        while True:
            families = scrape()
            ran = sampled(families, "pkiforge_scheduler_job_last_success_timestamp_seconds", "job")
            keys = sampled(families, "pkiforge_ca_key_available", "ca")
            if ran == jobs and keys == {"root", "services"}:
                break
            assert time.monotonic() < deadline, f"jobs run: {ran}, keys checked: {keys}"
            time.sleep(0.2)
    finally:
        server.stop()
    served: set[str] = set()
    for family in families.values():
        served.add(family.name)
        served.update(sample.name for sample in family.samples)
        if family.type == "counter":  # declared even before its first sample
            served.add(family.name + "_total")
        if family.type == "histogram":
            served.update(family.name + suffix for suffix in ("_bucket", "_count", "_sum"))
    rules = set().union(*(metric_names(expr) for expr in expressions()))
    dashboard = set().union(*(metric_names(expr) for expr in dashboard_expressions()))
    assert {
        "pkiforge_ready",
        "pkiforge_ca_key_available",
        "pkiforge_crl_next_update_timestamp_seconds",
    } <= rules
    assert rules - served == set()
    assert dashboard - served == set()
    # what the CA alerts watch has values, not only a declaration
    for name in ("pkiforge_ca_days_left", "pkiforge_crl_next_update_timestamp_seconds"):
        assert sampled(families, name, "ca") == {"root", "services"}, name
    assert sampled(families, "pkiforge_scheduler_job_interval_seconds", "job") == jobs
    assert sampled(families, "pkiforge_notification_deliveries", "status") == {
        "pending",
        "delivered",
        "failed",
    }
