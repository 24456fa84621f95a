"""The token-reviewer binding is written only when its subjects must change, read by name
only at start and at resync, and follows pools coming and going."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import pytest

from agentpool_operator.controller.reconcile import ParseCache, PoolKey
from agentpool_operator.controller.reviewers import (
    BindingMissingError,
    ReviewerBinding,
    binding_body,
    subjects_of,
)
from agentpool_operator.kube import KubeApi
from tests.unit.api_strategies import BASE_POOL

ROLE_REF = {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "r-tr"}


class Binding:
    """A stand-in for the API server's one ClusterRoleBinding (unit tests only)."""

    def __init__(self, subjects: list[dict[str, str]] | None = None, exists: bool = True) -> None:
        self.body: dict[str, Any] | None = (
            {"metadata": {"name": "r-tr"}, "roleRef": ROLE_REF, "subjects": subjects}
            if exists
            else None
        )
        self.requests: list[str] = []

    async def get_cluster_object(self, api_version: str, kind: str, name: str) -> Any:
        self.requests.append(f"get {kind}/{name}")
        return self.body

    async def apply_cluster_object(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        self.requests.append(f"apply {obj['kind']}/{obj['metadata']['name']}")
        assert self.body is not None
        self.body = {**self.body, **obj}
        return self.body


class View:
    def __init__(self) -> None:
        self.pools_by_ns: dict[str, list[dict[str, Any]]] = {}
        self.tools_by_ns: dict[str, list[dict[str, Any]]] = {}
        self._uid = 0

    def add_pool(self, namespace: str, name: str, spec: dict[str, Any]) -> None:
        self._uid += 1
        meta = {"name": name, "namespace": namespace, "uid": f"u{self._uid}", "generation": 1}
        self.pools_by_ns.setdefault(namespace, []).append({"metadata": meta, "spec": spec})

    def remove_pool(self, namespace: str, name: str) -> None:
        self.pools_by_ns[namespace] = [
            p for p in self.pools_by_ns[namespace] if p["metadata"]["name"] != name
        ]

    def add_tool(self, namespace: str, name: str, spec: dict[str, Any]) -> None:
        self._uid += 1
        meta = {"name": name, "namespace": namespace, "uid": f"u{self._uid}", "generation": 1}
        self.tools_by_ns.setdefault(namespace, []).append({"metadata": meta, "spec": spec})

    def pool_keys(self, namespace: str | None = None) -> list[PoolKey]:
        return [
            (ns, p["metadata"]["name"])
            for ns, pools in self.pools_by_ns.items()
            for p in pools
            if namespace in (None, ns)
        ]

    def pools(self, namespace: str) -> list[dict[str, Any]]:
        return self.pools_by_ns.get(namespace, [])

    def tools(self, namespace: str) -> list[dict[str, Any]]:
        return self.tools_by_ns.get(namespace, [])


def _reviewers(view: View, binding: Binding) -> ReviewerBinding:
    return ReviewerBinding("r-tr", view, ParseCache(), cast(KubeApi, binding))


def _shop() -> View:
    view = View()
    view.add_tool("shop", "ask-b", {"description": "d", "agent": {"poolName": "b"}})
    view.add_pool("shop", "a", {**BASE_POOL, "tools": {"refs": [{"name": "ask-b"}]}})
    view.add_pool("shop", "b", BASE_POOL)
    return view


async def test_the_subjects_follow_the_pools_and_are_written_only_when_they_change() -> None:
    view, binding = _shop(), Binding()
    reviewers = _reviewers(view, binding)
    assert await reviewers.sync() is True
    assert binding.requests == ["get ClusterRoleBinding/r-tr", "apply ClusterRoleBinding/r-tr"]
    assert binding.body is not None
    assert binding.body["roleRef"] == ROLE_REF
    assert binding.body["subjects"] == [
        {"kind": "ServiceAccount", "name": "b", "namespace": "shop"}
    ]
    # Nothing changed: no request at all, not even a read.
    assert await reviewers.sync() is False
    assert len(binding.requests) == 2
    # A pool in another namespace naming a gateway's ServiceAccount joins.
    gateway = {"serviceAccounts": [{"namespace": "edge", "name": "gw", "tenant": "*"}]}
    view.add_pool("ops", "c", {**BASE_POOL, "access": gateway})
    assert await reviewers.sync() is True
    assert subjects_of(binding.body) == {
        ("ServiceAccount", "shop", "b"),
        ("ServiceAccount", "ops", "c"),
    }
    # The caller goes: b no longer reviews tokens; then c goes too.
    view.remove_pool("shop", "a")
    view.remove_pool("ops", "c")
    assert await reviewers.sync() is True
    assert binding.body["subjects"] == []
    assert binding.requests.count("get ClusterRoleBinding/r-tr") == 1


async def test_a_restart_with_the_binding_already_right_reads_it_and_writes_nothing() -> None:
    binding = Binding([{"kind": "ServiceAccount", "name": "b", "namespace": "shop"}])
    reviewers = _reviewers(_shop(), binding)
    assert await reviewers.sync() is False
    assert binding.requests == ["get ClusterRoleBinding/r-tr"]


async def test_a_hand_edit_is_undone_at_the_next_resync() -> None:
    binding = Binding([{"kind": "ServiceAccount", "name": "b", "namespace": "shop"}])
    reviewers = _reviewers(_shop(), binding)
    assert await reviewers.sync() is False
    assert binding.body is not None
    binding.body["subjects"].append({"kind": "User", "name": "mallory"})
    reviewers.resync()
    assert await reviewers.sync() is True
    assert binding.body["subjects"] == [
        {"kind": "ServiceAccount", "name": "b", "namespace": "shop"}
    ]


async def test_a_missing_binding_is_an_error_and_nothing_is_created() -> None:
    binding = Binding(exists=False)
    with pytest.raises(BindingMissingError, match="r-tr"):
        await _reviewers(_shop(), binding).sync()
    assert binding.requests == ["get ClusterRoleBinding/r-tr"]


def test_the_applied_body_is_sorted_and_keeps_the_role() -> None:
    body = binding_body("r-tr", ROLE_REF, [("z", "b"), ("a", "c"), ("a", "b")])
    assert [(s["namespace"], s["name"]) for s in body["subjects"]] == [
        ("a", "b"),
        ("a", "c"),
        ("z", "b"),
    ]
    assert body["roleRef"] == ROLE_REF
