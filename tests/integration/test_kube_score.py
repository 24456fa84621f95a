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
