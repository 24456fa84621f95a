"""The controller's pure parts: the containment test that keeps a quiet cluster quiet, the
status and its Events, and the work queue."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from agentpool_operator import api
from agentpool_operator.controller.compare import contains, needs_apply
from agentpool_operator.controller.queue import WorkQueue
from agentpool_operator.controller.status import events, pool_status, status_changed
from agentpool_operator.render.children import desired_state
from agentpool_operator.render.config import RenderSettings
from tests.unit.api_strategies import BASE_POOL

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=10,
)


@given(value=json_values)
def test_every_object_contains_itself(value: Any) -> None:
    assert contains(value, value)


@given(value=st.dictionaries(st.text(max_size=3), json_values, max_size=4), extra=json_values)
def test_fields_the_server_adds_do_not_count_as_drift(value: dict[str, Any], extra: Any) -> None:
    assert contains({**value, "\x00server-default": extra}, value)


def test_a_changed_or_missing_field_is_drift_and_server_spellings_are_not() -> None:
    desired = {"metadata": {"name": "a"}, "spec": {"replicas": 2, "args": ["x"]}}
    live = {"metadata": {"name": "a", "uid": "u"}, "spec": {"replicas": 2, "args": ["x"]}}
    assert not needs_apply(desired, live)
    assert needs_apply(desired, None)
    assert needs_apply(desired, {**live, "spec": {"replicas": 3, "args": ["x"]}})
    assert needs_apply(desired, {**live, "spec": {"replicas": 2, "args": []}})
    assert not contains({"replicas": 1}, {"replicas": True})
    # The API server omits empty values and rewrites quantities.
    assert contains({}, {"value": "", "readOnly": False, "items": []})
    assert contains(
        {"resources": {"limits": {"memory": "1Gi"}}},
        {"resources": {"limits": {"memory": "1024Mi"}}},
    )
    assert not contains({"env": [{"value": "1024Mi"}]}, {"env": [{"value": "1Gi"}]})


def _pool(**meta: Any) -> api.AgentPool:
    return api.AgentPool.model_validate(
        {
            "metadata": {
                "name": "support",
                "namespace": "shop",
                "uid": "u",
                "generation": 2,
                **meta,
            },
            "spec": {**BASE_POOL, "replicas": 2},
        }
    )


def _deployment(ready: int, updated: int = 2, generation: int = 1) -> dict[str, Any]:
    return {
        "metadata": {"generation": generation},
        "spec": {"replicas": 2},
        "status": {
            "observedGeneration": generation,
            "replicas": 2,
            "readyReplicas": ready,
            "updatedReplicas": updated,
        },
    }


def _conditions(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


def test_status_tells_the_truth_and_changes_only_when_the_pool_does() -> None:
    pool = _pool()
    state = desired_state(pool, [], {}, RenderSettings())
    now = datetime(2026, 12, 4, tzinfo=UTC)
    creating = pool_status(pool, state, None, {}, now)
    assert _conditions(creating)["Ready"] == ("False", "Creating")
    half = pool_status(pool, state, _deployment(ready=1), creating, now + timedelta(seconds=5))
    assert _conditions(half)["Ready"] == ("False", "ReplicasNotReady")
    ready = pool_status(pool, state, _deployment(ready=2), half, now + timedelta(seconds=9))
    assert _conditions(ready)["Ready"] == ("True", "AllReplicasReady")
    assert _conditions(ready)["Progressing"] == ("False", "Stable")
    assert ready["observedGeneration"] == 2
    assert ready["selector"] == "agentpool.dev/pool=support"
    # Same inputs later: nothing to write (transition times are kept).
    again = pool_status(pool, state, _deployment(ready=2), ready, now + timedelta(hours=1))
    assert not status_changed(ready, again)
    assert status_changed(half, ready)
    assert [e.reason for e in events(half, ready, created=[], rolled=False)] == ["Ready"]
    assert events(ready, again, created=[], rolled=False) == []


def test_degraded_and_recovered_are_events_once_each() -> None:
    pool = api.AgentPool.model_validate(
        {
            "metadata": {"name": "support", "namespace": "shop", "uid": "u", "generation": 1},
            "spec": {**BASE_POOL, "replicas": 1, "tools": {"refs": [{"name": "orders"}]}},
        }
    )
    now = datetime(2026, 12, 4, tzinfo=UTC)
    broken = pool_status(pool, desired_state(pool, [], {}, RenderSettings()), None, {}, now)
    assert _conditions(broken)["Degraded"] == ("True", "ToolNotFound")
    assert _conditions(broken)["ToolsResolved"] == ("False", "ToolNotFound")
    found = [e for e in events({}, broken, created=[], rolled=False) if e.type == "Warning"]
    assert [e.reason for e in found] == ["ToolNotFound"]
    assert "orders" in found[0].message
    assert not [e for e in events(broken, broken, created=[], rolled=False) if e.type == "Warning"]
    tool = api.AgentTool.model_validate(
        {
            "metadata": {"name": "orders", "namespace": "shop"},
            "spec": {"description": "d", "agent": {"poolName": "x"}},
        }
    )
    fixed = pool_status(pool, desired_state(pool, [tool], {}, RenderSettings()), None, broken, now)
    assert _conditions(fixed)["Degraded"] == ("False", "AsExpected")
    assert "Recovered" in [e.reason for e in events(broken, fixed, created=[], rolled=False)]


def test_the_queue_hands_a_key_to_one_worker_and_requeues_changes_seen_meanwhile() -> None:
    async def scenario() -> None:
        queue: WorkQueue[str] = WorkQueue(base_delay=0.01)
        queue.add("a")
        queue.add("a")
        queue.add("b")
        assert len(queue) == 2
        key = await queue.get()
        assert key == "a"
        queue.add("a")  # changed while being reconciled
        assert len(queue) == 1
        queue.done("a")
        assert len(queue) == 2
        assert await queue.get() == "b"
        assert await queue.get() == "a"
        queue.done("a")
        assert queue.retry("a") == 0.01
        assert queue.retry("a") == 0.02
        assert await asyncio.wait_for(queue.get(), 1) == "a"

    asyncio.run(scenario())
