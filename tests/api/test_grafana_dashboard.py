"""deploy/grafana/pkiforge.json: a dashboard Grafana can import (Grafana is not packaged here,
so its structure is checked as Grafana's dashboard JSON model describes it); the metrics it
uses are checked against a served /metrics in test_alert_rules.py."""

from __future__ import annotations

import json
from typing import Any

import pytest

from .test_alert_rules import DASHBOARD, dashboard_panels, metric_names


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def test_the_dashboard_has_a_schema_version_a_uid_and_a_datasource_variable(
    dashboard: dict[str, Any],
) -> None:
    assert isinstance(dashboard["schemaVersion"], int) and dashboard["schemaVersion"] >= 36
    assert dashboard["uid"] and dashboard["title"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"


def test_panels_have_unique_ids_and_do_not_overlap(dashboard: dict[str, Any]) -> None:
    panels = dashboard_panels(dashboard)
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    cells: dict[tuple[int, int], int] = {}
    for panel in panels:
        grid = panel["gridPos"]
        assert {"h", "w", "x", "y"} <= grid.keys(), panel["title"]
        assert grid["w"] > 0 and grid["h"] > 0 and grid["x"] >= 0 and grid["x"] + grid["w"] <= 24
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"panel {panel['id']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["id"]


def test_every_query_panel_uses_the_datasource_variable_and_has_expressions(
    dashboard: dict[str, Any],
) -> None:
    queries = [p for p in dashboard_panels(dashboard) if p["type"] != "row"]
    assert len(queries) >= 20
    for panel in queries:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
            assert metric_names(target["expr"]), (panel["title"], target["expr"])


@pytest.mark.parametrize(
    "metric",
    [
        "pkiforge_certificates_issued_total",
        "pkiforge_certificates_failed_total",
        "pkiforge_http_request_duration_seconds_bucket",
        "pkiforge_crl_next_update_timestamp_seconds",
        "pkiforge_certificates_expiring_by_service",
        "pkiforge_certificates_overdue",
        "pkiforge_scheduler_job_last_success_timestamp_seconds",
        "pkiforge_notification_deliveries",
        "pkiforge_ready",
        "pkiforge_storage_free_bytes",
    ],
)
def test_the_dashboard_covers(dashboard: dict[str, Any], metric: str) -> None:
    used = {
        name
        for panel in dashboard_panels(dashboard)
        for target in panel.get("targets", [])
        for name in metric_names(target["expr"])
    }
    assert metric in used
