"""The autoscaler loop's writes, with the cluster and Redis replaced by recorders: what a
tick writes, and what it must not write twice (the real parts: test_autoscaler.py)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pytest

from agent_runtime.config.load import LoadSample
from agentpool_operator.autoscaler.board import LoadBoard
from agentpool_operator.autoscaler.loop import Autoscaler
from agentpool_operator.autoscaler.reader import Reading, Target
from agentpool_operator.autoscaler.scale_down import CHOSEN_COST, DELETION_COST_ANNOTATION
from agentpool_operator.render.references import ObjectVersion

NS = "team"
CAPACITY = 2


def _body(replicas: int, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "agentpool.dev/v1alpha1",
        "kind": "AgentPool",
        "metadata": {
            "name": "p",
            "namespace": NS,
            "uid": "u1",
            "generation": 1,
            "resourceVersion": f"{replicas}-{sorted((annotations or {}).items())}",
            "annotations": annotations or {},
        },
        "spec": {
            "instructions": "Help.",
            "model": {"baseUrl": "http://m/v1", "name": "m"},
            "replicas": replicas,
            "concurrencyPerReplica": CAPACITY,
            "memory": {"redis": {"url": "redis://r:6379/0"}},
            "scaling": {
                "mode": "Operator",
                "minReplicas": 1,
                "maxReplicas": 5,
                "operator": {
                    "targetLoadPercent": 50,
                    "scaleDownLoadPercent": 30,
                    "scaleUpWindowSeconds": 1,
                    "scaleDownWindowSeconds": 2,
                    "behavior": {"scaleDown": {"stabilizationWindowSeconds": 0}},
                },
            },
        },
        "status": {},
    }


class View:
    def __init__(self, body: dict[str, Any], ready: int) -> None:
        self.body = body
        self.ready = ready

    def pool_keys(self, namespace: str | None = None) -> list[tuple[str, str]]:
        return [(NS, "p")]

    def pool(self, namespace: str | None, name: str) -> dict[str, Any] | None:
        return self.body

    def children(self, namespace: str | None, pool: str) -> Mapping[str, dict[str, Any]]:
        return {"Deployment": {"status": {"readyReplicas": self.ready}}}

    def objects(self, namespace: str) -> Mapping[tuple[str, str], ObjectVersion]:
        return {}


class Kube:
    def __init__(self, pods: dict[str, str]) -> None:
        self.pods = pods  # name -> the pool its labels name
        self.scales: list[int] = []
        self.events: list[str] = []
        self.annotated: dict[str, str | None] = {}
        self.statuses: list[dict[str, Any]] = []

    async def scale(self, namespace: str, name: str, replicas: int, *, manager: str) -> None:
        self.scales.append(replicas)

    async def event(self, pool: Any, *, type_: str, reason: str, message: str) -> None:
        self.events.append(reason)

    async def apply_status(
        self, kind: str, namespace: str, name: str, status: Mapping[str, Any], **_: Any
    ) -> dict[str, Any]:
        self.statuses.append(dict(status))
        return {}

    async def get_pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        if name not in self.pods:
            return None
        labels = {"agentpool.dev/pool": self.pods[name]}
        return {"metadata": {"name": name, "uid": f"uid-{name}", "labels": labels}}

    async def annotate_pod(
        self, namespace: str, name: str, uid: str, annotations: Mapping[str, str | None]
    ) -> None:
        self.annotated[name] = annotations[DELETION_COST_ANNOTATION]

    async def get_secret(self, namespace: str, name: str) -> None:
        return None


class Reader:
    """Redis replaced: the samples each tick reads, and the drain requests made."""

    def __init__(self) -> None:
        self.samples: dict[str, LoadSample] = {}
        self.queue = 0
        self.drains: dict[str, float] = {}

    async def read(self, targets: Sequence[Target]) -> dict[str, Reading | None]:
        return {t.key: Reading(dict(self.samples), self.queue) for t in targets}

    async def request_drain(self, url: str, key: str, pods: Iterable[str], until: float) -> None:
        self.drains.update(dict.fromkeys(pods, until))

    async def withdraw_drain(self, url: str, key: str, pods: Iterable[str]) -> None:
        for pod in pods:
            self.drains.pop(pod, None)

    async def close(self) -> None:
        return None


def _samples(
    now: float, turns: dict[str, int], draining: Iterable[str] = (), queued: int = 0
) -> dict[str, Any]:
    return {
        pod: LoadSample(
            active_turns=n,
            capacity=CAPACITY,
            queued_tasks=queued,
            draining=pod in draining,
            at=now,
        )
        for pod, n in turns.items()
    }


def _loop(view: View, kube: Kube, reader: Reader) -> Autoscaler:
    return Autoscaler(
        view,
        kube,  # type: ignore[arg-type]
        board=LoadBoard(),
        default_redis_url=None,
        reader=reader,  # type: ignore[arg-type]
    )


@pytest.mark.asyncio
async def test_a_scale_is_written_once_even_before_the_watch_shows_it() -> None:
    view, kube, reader = View(_body(1), ready=1), Kube({"p-a": "p"}), Reader()
    loop = _loop(view, kube, reader)
    # Every slot busy and work queued (each replica publishes the queue's depth): the
    # pool grows at once, to the most it may have.
    reader.samples = _samples(100.0, {"p-a": 2}, queued=4)
    await loop.tick(100.0)
    assert kube.scales == [5]
    assert kube.events.count("ScaledUp") == 1
    for now in (101.0, 102.0, 103.0):  # the watch still shows 1 replica
        reader.samples = _samples(now, {"p-a": 2}, queued=4)
        await loop.tick(now)
    assert kube.scales == [5]
    assert kube.events.count("ScaledUp") == 1


@pytest.mark.asyncio
async def test_a_scale_down_drains_the_idlest_own_pods_first_then_lowers_replicas() -> None:
    pods = {"p-a": "p", "p-b": "p", "p-c": "p", "q-x": "other-pool"}
    view, kube, reader = View(_body(4), ready=4), Kube(pods), Reader()
    loop = _loop(view, kube, reader)
    busy = {"p-a": 1, "p-b": 0, "p-c": 0, "q-x": 0}  # q-x: a sample naming another pool's pod
    now = 100.0
    for _ in range(6):  # past the restart guard and the scale-down window
        reader.samples = _samples(now, busy)
        await loop.tick(now)
        now += 1.0
        if reader.drains:
            break
    assert kube.scales == [], "replicas lowered before the chosen replicas drained"
    assert set(reader.drains) == {"p-b", "p-c"}
    assert kube.annotated == {"p-b": CHOSEN_COST, "p-c": CHOSEN_COST}
    reader.samples = _samples(now, busy, draining={"p-b", "p-c"})
    await loop.tick(now)
    assert kube.scales == [2]
    assert "ScaledDown" in kube.events


@pytest.mark.asyncio
async def test_paused_writes_no_replicas_and_pinned_writes_the_pin() -> None:
    view = View(_body(1, {"agentpool.dev/paused": "true"}), ready=1)
    kube, reader = Kube({"p-a": "p"}), Reader()
    loop = _loop(view, kube, reader)
    reader.samples = _samples(100.0, {"p-a": 2}, queued=6)
    await loop.tick(100.0)
    assert kube.scales == []
    conditions = {c["type"]: c["reason"] for c in kube.statuses[-1]["conditions"]}
    assert conditions["ScalingActive"] == "Paused"
    view.body = _body(1, {"agentpool.dev/paused-replicas": "3"})
    await loop.tick(101.0)
    assert kube.scales == [3]


@pytest.mark.asyncio
async def test_a_steady_pool_writes_nothing_after_its_first_status() -> None:
    view, kube, reader = View(_body(2), ready=2), Kube({}), Reader()
    loop = _loop(view, kube, reader)
    for now in range(100, 130):
        reader.samples = _samples(float(now), {"p-a": 1, "p-b": 1})  # 50 %: the target
        await loop.tick(float(now))
        if kube.statuses:
            view.body["status"] = kube.statuses[-1]  # as the watch would show it
    assert kube.scales == []
    # The first status, and the one that drops the restart guard's deadline once it has
    # passed; then nothing, tick after tick.
    assert len(kube.statuses) == 2
    assert "scaleDownBlockedUntil" not in kube.statuses[-1]


@pytest.mark.asyncio
async def test_refused_callers_show_in_the_status_load_and_the_board() -> None:
    view, kube, reader = View(_body(2), ready=2), Kube({}), Reader()
    loop = _loop(view, kube, reader)
    full = _samples(100.0, {"p-a": 2, "p-b": 2})
    full["p-b"] = LoadSample(active_turns=2, capacity=CAPACITY, at=100.0, refused_turns=4)
    reader.samples = full
    await loop.tick(100.0)
    # 4 turns in 4 slots and 4 callers refused: demand 8, load 200 %, and a scale at once
    # to the size of all of it (8 / (2 x 50 %) = 8, maxReplicas 5).
    assert kube.statuses[-1]["demand"] == 8
    assert kube.statuses[-1]["loadPercent"] == 200
    assert kube.scales == [5]
    view.body["status"] = kube.statuses[-1]
    await loop.tick(100.5)  # the status of the next tick tells why it scaled
    assert "4 refused" in kube.statuses[-1]["lastScaleReason"]
    load = loop.board.get(f"{NS}/p")
    assert load is not None
    assert load.demand == 8


@pytest.mark.asyncio
async def test_the_pool_series_the_alerts_read_follow_the_pool_and_go_with_it() -> None:
    from prometheus_client import REGISTRY

    body = _body(2)
    body["status"] = {"conditions": [{"type": "Degraded", "status": "True", "reason": "X"}]}
    view, kube, reader = View(body, ready=2), Kube({}), Reader()
    loop = _loop(view, kube, reader)
    await loop.tick(100.0)
    labels = {"namespace": NS, "pool": "p"}
    degraded = {**labels, "condition": "Degraded"}
    assert REGISTRY.get_sample_value("agentpool_pool_condition", {**degraded, "status": "True"})
    assert REGISTRY.get_sample_value("agentpool_pool_desired_replicas", labels) == 2
    assert REGISTRY.get_sample_value("agentpool_pool_max_replicas", labels) == 5
    view.pool_keys = lambda namespace=None: []  # type: ignore[method-assign]
    await loop.tick(101.0)
    assert REGISTRY.get_sample_value("agentpool_pool_desired_replicas", labels) is None
    assert (
        REGISTRY.get_sample_value("agentpool_pool_condition", {**degraded, "status": "True"})
        is None
    )
