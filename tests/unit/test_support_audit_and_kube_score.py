"""The test helpers that judge the operator: audit-log counting and kube-score exceptions."""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tests.support.audit import count_writes, read_events
from tests.support.kube_score import Finding, Justification, justifications, unjustified

T0 = datetime(2026, 12, 4, 2, 0, tzinfo=UTC)
VERBS = ["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"]
RESOURCES = [
    ("", "configmaps", ""),
    ("apps", "deployments", ""),
    ("agentpool.dev", "agentpools", "status"),
    ("coordination.k8s.io", "leases", ""),
]


def _line(user: str, verb: str, ref: tuple[str, str, str], at: datetime, code: int = 200) -> str:
    group, resource, sub = ref
    event: dict[str, Any] = {
        "kind": "Event",
        "stage": "ResponseComplete",
        "verb": verb,
        "user": {"username": user},
        "objectRef": {"apiGroup": group, "resource": resource, "namespace": "ns", "name": "x"},
        "responseStatus": {"code": code},
        "requestReceivedTimestamp": at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    }
    if sub:
        event["objectRef"]["subresource"] = sub
    return json.dumps(event)


requests = st.lists(
    st.tuples(
        st.sampled_from(["op", "admin"]),
        st.sampled_from(VERBS),
        st.sampled_from(RESOURCES),
        st.integers(min_value=0, max_value=120),
    ),
    max_size=40,
)


@given(requests)
def test_writes_are_counted_per_user_and_window_with_leases_apart(
    reqs: list[tuple[str, str, tuple[str, str, str], int]],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "audit.log"
        lines = [_line(u, v, r, T0 + timedelta(seconds=s)) for u, v, r, s in reqs]
        # A RequestReceived stage and a half-written last line are ignored.
        path.write_text("\n".join([*lines, '{"stage": "RequestReceived"}', '{"half']) + "\n")
        since, until = T0 + timedelta(seconds=30), T0 + timedelta(seconds=90)
        counts = count_writes(read_events(path, user="op", since=since, until=until))
        inside = [
            (v, r)
            for u, v, r, s in reqs
            if u == "op" and 30 <= s < 90 and v not in ("get", "list", "watch")
        ]
        assert counts.lease_writes == sum(1 for _, r in inside if r[1] == "leases")
        assert counts.total_excluding_leases == sum(1 for _, r in inside if r[1] != "leases")
        if ("patch", RESOURCES[2]) in inside:
            assert counts.by_request[("patch", "agentpool.dev/agentpools/status")] >= 1


def test_justifications_match_check_and_object_pattern_and_need_a_reason(tmp_path: Path) -> None:
    doc = tmp_path / "kube-score.md"
    doc.write_text(
        "## The chart\n\n| check | object | reason |\n| --- | --- | --- |\n"
        "| `pod-networkpolicy` | `Deployment/*-agentpool` | a reason long enough |\n"
        "## A pool's children\n\n"
        "| `container-image-pull-policy` | `Deployment/*` | pinned tags everywhere |\n"
    )
    chart = justifications(doc, section="The chart")
    assert chart == [
        Justification(
            "pod-networkpolicy", "Deployment/*-agentpool", "a reason long enough", "The chart"
        )
    ]
    assert len(justifications(doc)) == 2
    covered = Finding("pod-networkpolicy", "Deployment/rel-agentpool", "CRITICAL", "")
    other_object = Finding("pod-networkpolicy", "Deployment/redis", "CRITICAL", "")
    warning = Finding("deployment-replicas", "Deployment/x", "WARNING", "")
    assert unjustified([covered, other_object, warning], chart) == [other_object]
