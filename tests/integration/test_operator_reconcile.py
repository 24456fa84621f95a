"""The operator against the real control plane: `kubectl apply` a pool and get running,
observable agents; changes roll, drift is restored, deletes cascade, problems show and
heal, and a scale is never undone."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.integration.crd_install import install_crds
from tests.support.cluster import Cluster
from tests.support.operator_process import OperatorProcess, operator_running
from tests.support.wait import wait_until

GROUP, VERSION = "agentpool.dev", "v1alpha1"
MODEL = {
    "baseUrl": "http://llm.example.com/v1",
    "name": "m",
    "apiKeySecretRef": {"name": "llm", "key": "api-key"},
}


@pytest.fixture
def operator(cluster: Cluster, namespace: str, tmp_path: Path) -> Iterator[OperatorProcess]:
    install_crds(cluster)
    with operator_running(cluster, [namespace], tmp_path / "operator.log") as handle:
        yield handle


class Api:
    def __init__(self, api_client: client.ApiClient, namespace: str) -> None:
        self.ns = namespace
        self.custom = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)
        self.apps = client.AppsV1Api(api_client)

    def create(
        self, plural: str, name: str, spec: dict[str, Any], labels: dict[str, str] | None = None
    ) -> None:
        kind = {"agentpools": "AgentPool", "agenttools": "AgentTool"}[plural]
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": kind,
            "metadata": {"name": name, "labels": labels or {}},
            "spec": spec,
        }
        self.custom.create_namespaced_custom_object(GROUP, VERSION, self.ns, plural, body)

    def patch(self, plural: str, name: str, body: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(GROUP, VERSION, self.ns, plural, name, body)

    def pool(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.ns, "agentpools", name
        )
        return found

    def condition(self, name: str, type_: str) -> tuple[str, str] | None:
        for c in (self.pool(name).get("status") or {}).get("conditions", []):
            if c["type"] == type_:
                return c["status"], c["reason"]
        return None

    def secret(self, name: str, data: dict[str, str]) -> None:
        encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
        body = client.V1Secret(metadata=client.V1ObjectMeta(name=name), data=encoded)
        try:
            self.core.create_namespaced_secret(self.ns, body)
        except client.ApiException as exc:
            if exc.status != 409:
                raise
            self.core.replace_namespaced_secret(name, self.ns, body)

    def deployment(self, name: str) -> client.V1Deployment | None:
        try:
            return self.apps.read_namespaced_deployment(name, self.ns)
        except client.ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def config_hash(self, name: str) -> str | None:
        found = self.deployment(name)
        if found is None:
            return None
        annotations = found.spec.template.metadata.annotations or {}
        value: str | None = annotations.get("agentpool.dev/config-hash")
        return value

    def running_pods(self, name: str) -> int:
        pods = self.core.list_namespaced_pod(
            self.ns, label_selector=f"agentpool.dev/pool={name}"
        ).items
        return sum(
            1 for p in pods if p.status.phase == "Running" and p.metadata.deletion_timestamp is None
        )

    def events(self, name: str) -> list[str]:
        items = self.core.list_namespaced_event(
            self.ns, field_selector=f"involvedObject.name={name}"
        ).items
        return [e.reason for e in items if e.source and e.source.component == "agentpool-operator"]


@pytest.fixture
def kube(kube_api: client.ApiClient, namespace: str) -> Api:
    return Api(kube_api, namespace)


def _recorded(kube: Api, name: str, reasons: set[str]) -> None:
    """Wait for Events with these reasons: the reconcile records them after the status
    that a test waits for, so they may land a moment later."""
    wait_until(
        lambda: reasons <= set(kube.events(name)),
        timeout=30,
        what=f"Events {sorted(reasons)} on {name}",
    )


def _ready(kube: Api, name: str) -> bool:
    return kube.condition(name, "Ready") == ("True", "AllReplicasReady")


def test_a_pool_gets_its_children_and_becomes_ready_with_running_pods(
    operator: OperatorProcess, kube: Api, cluster: Cluster
) -> None:
    kube.secret("llm", {"api-key": "k1"})
    kube.create(
        "agentpools",
        "support",
        {"instructions": "Help.", "model": MODEL, "scaling": {"minReplicas": 2}},
    )
    wait_until(lambda: _ready(kube, "support"), timeout=90, what="pool Ready")
    pool = kube.pool("support")
    assert pool["spec"]["replicas"] == 2  # written once, as the scale subresource would
    status = pool["status"]
    assert (status["replicas"], status["readyReplicas"], status["desiredReplicas"]) == (2, 2, 2)
    assert status["observedGeneration"] == pool["metadata"]["generation"]
    assert status["selector"] == "agentpool.dev/pool=support"
    assert kube.running_pods("support") == 2
    uid = pool["metadata"]["uid"]
    for kind in ("deployment", "service", "configmap", "serviceaccount", "networkpolicy", "pdb"):
        name = "support-config" if kind == "configmap" else "support"
        out = json.loads(cluster.kubectl("-n", kube.ns, "get", kind, name, "-o", "json").stdout)
        assert out["metadata"]["ownerReferences"][0]["uid"] == uid, kind
    _recorded(kube, "support", {"Created", "Ready"})
    table = cluster.kubectl("-n", kube.ns, "get", "ap", "support").stdout
    assert "AllReplicasReady" in table
    assert "2" in table
    # kubectl scale goes through the scale subresource; the Deployment follows and a later
    # reconcile (a spec change) does not undo it.
    cluster.kubectl("-n", kube.ns, "scale", "agentpool", "support", "--replicas=3")
    wait_until(lambda: kube.running_pods("support") == 3, timeout=60, what="3 pods")
    kube.patch("agentpools", "support", {"spec": {"instructions": "Help more."}})
    wait_until(
        lambda: (
            kube.pool("support")["status"].get("observedGeneration")
            == kube.pool("support")["metadata"]["generation"]
        ),
        timeout=30,
        what="the update observed",
    )
    deployment = kube.deployment("support")
    assert deployment is not None
    assert deployment.spec.replicas == 3


def test_changes_roll_the_pods_and_a_tool_rerenders_only_its_pools(
    operator: OperatorProcess, kube: Api
) -> None:
    kube.secret("llm", {"api-key": "k1"})
    tool = {"description": "Ask billing.", "agent": {"poolName": "billing"}}
    kube.create("agenttools", "ask-billing", tool, labels={"team": "support"})
    kube.create(
        "agentpools",
        "front",
        {
            "instructions": "Help.",
            "model": MODEL,
            "tools": {"selector": {"matchLabels": {"team": "support"}}},
        },
    )
    kube.create("agentpools", "billing", {"instructions": "Bill.", "model": MODEL})
    for name in ("front", "billing"):
        wait_until(lambda name=name: _ready(kube, name), timeout=90, what=f"{name} Ready")
    assert [t["name"] for t in kube.pool("front")["status"]["tools"]] == ["ask-billing"]
    front_hash, billing_hash = kube.config_hash("front"), kube.config_hash("billing")
    billing_cm = kube.core.read_namespaced_config_map(
        "billing-config", kube.ns
    ).metadata.resource_version
    kube.patch("agenttools", "ask-billing", {"spec": {"description": "Ask the billing team."}})
    wait_until(
        lambda: kube.config_hash("front") != front_hash, timeout=30, what="front re-rendered"
    )
    cm = kube.core.read_namespaced_config_map("front-config", kube.ns)
    assert "Ask the billing team." in cm.data["config.json"]
    assert (
        kube.core.read_namespaced_config_map("billing-config", kube.ns).metadata.resource_version
        == billing_cm
    )
    assert kube.config_hash("billing") == billing_hash
    # Rotating the API key rolls the pods of both pools.
    rotated = kube.config_hash("front")
    kube.secret("llm", {"api-key": "k2"})
    wait_until(lambda: kube.config_hash("front") != rotated, timeout=30, what="rolled on rotation")
    wait_until(
        lambda: kube.config_hash("billing") != billing_hash, timeout=30, what="billing rolled"
    )
    _recorded(kube, "front", {"RollingUpdate"})


def test_drift_is_restored_and_deleting_the_pool_removes_every_child(
    operator: OperatorProcess, kube: Api, cluster: Cluster
) -> None:
    kube.secret("llm", {"api-key": "k1"})
    kube.create("agentpools", "drift", {"instructions": "Help.", "model": MODEL})
    wait_until(lambda: _ready(kube, "drift"), timeout=90, what="pool Ready")
    service_uid = kube.core.read_namespaced_service("drift", kube.ns).metadata.uid
    kube.core.delete_namespaced_service("drift", kube.ns)
    wait_until(
        lambda: kube.core.read_namespaced_service("drift", kube.ns).metadata.uid != service_uid,
        timeout=30,
        what="the Service restored",
    )
    cluster.kubectl(
        "-n",
        kube.ns,
        "patch",
        "deployment",
        "drift",
        "--type=json",
        "-p",
        '[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"evil:1"}]',
    )

    def image() -> str:
        found = kube.deployment("drift")
        assert found is not None
        value: str = found.spec.template.spec.containers[0].image
        return value

    wait_until(
        lambda: image() == "registry.local/agentpool-agent:test", timeout=30, what="image restored"
    )
    kube.custom.delete_namespaced_custom_object(GROUP, VERSION, kube.ns, "agentpools", "drift")

    def gone() -> bool:
        left = cluster.kubectl(
            "-n",
            kube.ns,
            "get",
            "deployment,service,configmap,serviceaccount,networkpolicy",
            "-l",
            "agentpool.dev/pool=drift",
            "-o",
            "name",
        ).stdout.strip()
        return not left

    wait_until(gone, timeout=60, what="every child garbage-collected")


def test_a_missing_secret_or_tool_degrades_the_pool_and_it_recovers_by_itself(
    operator: OperatorProcess, kube: Api
) -> None:
    spec = {"instructions": "Help.", "model": MODEL, "tools": {"refs": [{"name": "lookup"}]}}
    kube.create("agentpools", "fragile", spec)
    wait_until(
        lambda: kube.condition("fragile", "Degraded") == ("True", "ToolNotFound"),
        timeout=30,
        what="Degraded by the missing tool",
    )
    message = next(
        c["message"]
        for c in kube.pool("fragile")["status"]["conditions"]
        if c["type"] == "Degraded"
    )
    assert "lookup" in message
    assert "llm" in message
    kube.create("agenttools", "lookup", {"description": "d", "agent": {"poolName": "other"}})
    wait_until(
        lambda: kube.condition("fragile", "Degraded") == ("True", "SecretNotFound"),
        timeout=30,
        what="still Degraded, by the Secret",
    )
    kube.secret("llm", {"api-key": "k"})
    wait_until(
        lambda: kube.condition("fragile", "Degraded") == ("False", "AsExpected"),
        timeout=30,
        what="recovered",
    )
    wait_until(lambda: _ready(kube, "fragile"), timeout=90, what="Ready after recovery")
    _recorded(kube, "fragile", {"ToolNotFound", "SecretNotFound", "Recovered"})


def test_a_child_the_server_refuses_degrades_the_pool_and_it_recovers(
    operator: OperatorProcess, kube: Api
) -> None:
    """A ResourceQuota that allows no Service: the pool says which child failed and why,
    its other children are applied, and it recovers once the quota allows it."""
    quota = client.V1ResourceQuota(
        metadata=client.V1ObjectMeta(name="no-services"),
        spec=client.V1ResourceQuotaSpec(hard={"services": "0"}),
    )
    kube.core.create_namespaced_resource_quota(kube.ns, quota)
    wait_until(
        lambda: (
            (
                kube.core.read_namespaced_resource_quota("no-services", kube.ns).status
                or client.V1ResourceQuotaStatus()
            ).hard
        ),
        timeout=30,
        what="the quota in force",
    )
    kube.secret("llm", {"api-key": "k"})
    kube.create("agentpools", "capped", {"instructions": "Help.", "model": MODEL})
    wait_until(
        lambda: kube.condition("capped", "Degraded") == ("True", "ApplyFailed"),
        timeout=30,
        what="Degraded by the refused Service",
    )
    message = next(
        c["message"] for c in kube.pool("capped")["status"]["conditions"] if c["type"] == "Degraded"
    )
    assert "Service capped" in message
    assert "quota" in message
    assert kube.deployment("capped") is not None  # the others were applied
    kube.core.delete_namespaced_resource_quota("no-services", kube.ns)
    wait_until(
        lambda: kube.condition("capped", "Degraded") == ("False", "AsExpected"),
        timeout=60,
        what="recovered once the quota is gone",
    )
    kube.core.read_namespaced_service("capped", kube.ns)
    _recorded(kube, "capped", {"ApplyFailed", "Recovered"})
