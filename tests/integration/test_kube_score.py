"""kube-score over the chart's output: no CRITICAL that docs/kube-score.md does not justify."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.cluster import built_bin_dir
from tests.support.kube_score import Finding, justifications, score, unjustified, unused
from tests.support.redis_server import REPO_ROOT

CHART = str(REPO_ROOT / "charts" / "agentpool")
SECTION = "The chart"

VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "redis-and-namespaced": {
        "redis": {"enabled": True},
        "watchNamespaces": ["team-a", "team-b"],
        "metrics": {"serviceMonitor": {"enabled": True}},
        "prometheusRule": {"enabled": True},
        "metricsApi": {"enabled": True},
    },
}


def _render(values: dict[str, Any], tmp_path: Path) -> str:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    out = subprocess.run(
        [str(built_bin_dir() / "helm"), "template", "rel", CHART, "-n", "agentpool-system",
         "-f", str(path)],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return out.stdout


def _show(findings: list[Finding]) -> str:
    return "\n".join(f"  {f.check} on {f.object}: {f.summary}" for f in findings)


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=list(VALUE_SETS))
def test_the_chart_has_no_unjustified_critical(values: dict[str, Any], tmp_path: Path) -> None:
    findings = score(_render(values, tmp_path))
    assert findings, "kube-score reported nothing: did it read the manifests?"
    missing = unjustified(findings, justifications(section=SECTION))
    assert not missing, (
        "CRITICAL findings neither fixed nor justified in docs/kube-score.md:\n" + _show(missing)
    )


def test_every_chart_justification_is_still_needed(tmp_path: Path) -> None:
    findings = [f for values in VALUE_SETS.values() for f in score(_render(values, tmp_path))]
    stale = unused(findings, justifications(section=SECTION))
    assert not stale, f"justified but no longer reported (remove them): {stale}"


def test_the_justified_list_is_short_and_each_has_a_reason() -> None:
    rows = justifications(section=SECTION)
    assert len(rows) <= 5
    assert all(len(j.reason) >= 20 for j in rows)


def test_the_helper_flags_what_it_should() -> None:
    # Control: a careless Deployment gets CRITICALs that nothing justifies.
    careless = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "careless", "namespace": "x"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "careless"}},
            "template": {
                "metadata": {"labels": {"app": "careless"}},
                "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]},
            },
        },
    }
    checks = {f.check for f in unjustified(score([careless]), [])}
    assert {"pod-networkpolicy", "container-resources"} <= checks


POOL_SECTION = "A pool's children"


def _example_children() -> list[dict[str, Any]]:
    """Every child the operator renders for the examples (with replicas written, as the
    operator writes them first)."""
    from agentpool_operator import api
    from agentpool_operator.render.children import desired_state, initial_replicas
    from agentpool_operator.render.config import RenderSettings
    from agentpool_operator.render.tools import callers_of

    docs = [
        d
        for f in sorted((REPO_ROOT / "examples").glob("*.yaml"))
        for d in yaml.safe_load_all(f.read_text())
        if d
    ]

    def meta(d: dict[str, Any]) -> dict[str, Any]:
        return {**d["metadata"], "namespace": "shop", "uid": "00000000-0000-0000-0000-000000000001"}

    tools = [
        api.AgentTool.model_validate({**d, "metadata": meta(d)})
        for d in docs
        if d["kind"] == "AgentTool"
    ]
    pools = [
        api.AgentPool.model_validate({**d, "metadata": meta(d)})
        for d in docs
        if d["kind"] == "AgentPool"
    ]
    children: list[dict[str, Any]] = []
    for pool in pools:
        if pool.spec.replicas is None:
            replicas = initial_replicas(pool, None)
            pool = pool.model_copy(
                update={"spec": pool.spec.model_copy(update={"replicas": replicas})}
            )
        callers = callers_of(pool.metadata.name, pools, tools)
        state = desired_state(
            pool, tools, {}, RenderSettings(agent_image="registry.local/agent:1.0"), callers
        )
        children.extend(state.children)
    return children


def test_a_pools_children_have_no_unjustified_critical() -> None:
    findings = score(_example_children())
    assert findings, "kube-score reported nothing: did it read the manifests?"
    missing = unjustified(findings, justifications(section=POOL_SECTION))
    assert not missing, (
        "CRITICAL findings on a pool's children neither fixed nor justified in "
        "docs/kube-score.md:\n" + _show(missing)
    )
