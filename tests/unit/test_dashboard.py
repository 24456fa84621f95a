"""The chart's Grafana dashboard shows every metric the runtime and the operator define,
and queries no metric that nothing defines (a renamed metric leaves an empty panel
otherwise).

Metric definitions are found in the source (calls of prometheus-client's Counter, Gauge,
Histogram, Summary with a literal name), so a new metric anywhere in the runtime fails
this test until a panel shows it; importing the modules is not needed.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "charts/agentpool/files/dashboard.json"
RUNTIME = ROOT / "agent_image/agent_runtime"
OPERATOR = ROOT / "operator/agentpool_operator"
KINDS = {"Counter", "Gauge", "Histogram", "Summary"}
# What Prometheus exposes beside a family's own name.
SUFFIXES = ("_bucket", "_count", "_sum", "_created")


def defined_metrics(package: Path) -> set[str]:
    names: set[str] = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            func = node.func
            kind = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            first = node.args[0]
            if (
                kind in KINDS
                and isinstance(first, ast.Constant)
                and isinstance(first.value, str)
                and first.value.startswith("agentpool_")
            ):
                names.add(first.value)
    return names


def queried_metrics() -> set[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [
        target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])
    ] + [variable.get("query", "") for variable in dashboard["templating"]["list"]]
    names = set()
    for expr in exprs:
        for name in re.findall(r"\bagentpool_[a-z0-9_]+", expr):
            for suffix in SUFFIXES:
                if name.endswith(suffix) and not name.endswith("_total" + suffix):
                    name = name.removesuffix(suffix)
                    break
            names.add(name)
    return names


def test_the_scan_finds_the_runtimes_metrics() -> None:
    found = defined_metrics(RUNTIME)
    assert {
        "agentpool_turn_duration_seconds",
        "agentpool_tool_calls_total",
        "agentpool_tasks_queued",
        "agentpool_http_requests_total",
        "agentpool_tool_approvals_total",
    } <= found


def test_every_runtime_metric_is_on_a_panel() -> None:
    missing = defined_metrics(RUNTIME) - queried_metrics()
    assert not missing, f"metrics without a panel in {DASHBOARD.name}: {sorted(missing)}"


def test_every_operator_metric_is_on_a_panel() -> None:
    missing = defined_metrics(OPERATOR) - queried_metrics()
    assert not missing, f"operator metrics without a panel in {DASHBOARD.name}: {sorted(missing)}"


def test_the_dashboard_queries_only_metrics_that_exist() -> None:
    unknown = queried_metrics() - defined_metrics(RUNTIME) - defined_metrics(OPERATOR)
    assert not unknown, f"{DASHBOARD.name} queries metrics nothing defines: {sorted(unknown)}"


def test_panels_do_not_overlap_and_have_unique_ids() -> None:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        pos = panel["gridPos"]
        mine = {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not mine & cells, f"panel {panel['title']!r} overlaps another"
        cells |= mine
