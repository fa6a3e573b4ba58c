"""The Grafana dashboard charts only metrics the code defines: a renamed metric fails here."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "linewatch.json"
METRIC_MODULES = [ROOT / "edge" / "metrics.py", ROOT / "cloud" / "collector" / "metrics.py"]
_NAME = re.compile(r"\b(linewatch_[a-z0-9_]+)\b")
_SUFFIXES = {
    "Counter": ("_total", "_created"),
    "Gauge": ("",),
    "Histogram": ("_bucket", "_sum", "_count", "_created"),
    "Summary": ("", "_sum", "_count", "_created"),
}


def _defined_series() -> set[str]:
    """Every series name prometheus_client exposes for the metrics the modules define."""
    series: set[str] = set()
    for module in METRIC_MODULES:
        for node in ast.walk(ast.parse(module.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
                continue
            kind = node.func.id
            if kind in _SUFFIXES and node.args and isinstance(node.args[0], ast.Constant):
                name = str(node.args[0].value)
                series.update(f"{name}{suffix}" for suffix in _SUFFIXES[kind])
    return series


def _queries(dashboard: dict[str, object]) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []

    def walk(panels: object) -> None:
        for panel in panels if isinstance(panels, list) else []:
            for target in panel.get("targets", []):
                found.append((panel["title"], target["expr"]))
            walk(panel.get("panels", []))

    walk(dashboard["panels"])
    return found


def test_the_modules_define_the_metrics_the_test_looks_for() -> None:
    series = _defined_series()
    assert "linewatch_frames_processed_total" in series
    assert "linewatch_collector_lag_seconds_bucket" in series
    assert "linewatch_collector_inbox_depth" in series


def test_every_metric_a_panel_queries_exists_in_the_code() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    series = _defined_series()
    queries = _queries(dashboard)
    assert len(queries) >= 10
    missing = [
        (title, name)
        for title, expr in queries
        for name in _NAME.findall(expr)
        if name not in series
    ]
    assert missing == []


def test_the_dashboard_shows_nodes_and_collector() -> None:
    names = {
        name
        for _, expr in _queries(json.loads(DASHBOARD.read_text()))
        for name in _NAME.findall(expr)
    }
    for wanted in (
        "linewatch_frames_processed_total",
        "linewatch_verdicts_total",
        "linewatch_inspection_latency_seconds_bucket",
        "linewatch_frames_dropped_total",
        "linewatch_collector_node_outbox_backlog",
        "linewatch_collector_lag_seconds_bucket",
        "linewatch_collector_batch_size_sum",
        "linewatch_collector_stored_total",
    ):
        assert wanted in names
