"""Smoke tests: the control plane, kwok nodes, CRDs, helm and Redis are real."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import pytest
import redis
from kubernetes import client

from tests.support.cluster import Cluster
from tests.support.wait import wait_until

SMOKE_CRD = textwrap.dedent(
    """
    apiVersion: apiextensions.k8s.io/v1
    kind: CustomResourceDefinition
    metadata:
      name: widgets.smoke.agentpool.dev
    spec:
      group: smoke.agentpool.dev
      scope: Namespaced
      names: {plural: widgets, singular: widget, kind: Widget}
      versions:
        - name: v1
          served: true
          storage: true
          schema:
            openAPIV3Schema:
              type: object
              properties:
                spec:
                  type: object
                  required: [size]
                  properties:
                    size: {type: integer, minimum: 1, maximum: 10}
                    colour: {type: string, enum: [red, blue]}
    """
)


def test_api_server_reports_the_built_version(cluster: Cluster) -> None:
    version = json.loads(cluster.kubectl("get", "--raw", "/version").stdout)
    assert version["gitVersion"] == "v1.34.4"
    assert (version["major"], version["minor"]) == ("1", "34")
    assert version["gitTreeState"] == "clean"


def test_rbac_is_enforced(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("create", "serviceaccount", "nobody", "-n", namespace)
    allowed = cluster.kubectl(
        "auth",
        "can-i",
        "list",
        "secrets",
        "-n",
        namespace,
        f"--as=system:serviceaccount:{namespace}:nobody",
        check=False,
    )
    assert allowed.stdout.strip() == "no"


def test_deployment_pods_reach_running_on_kwok_nodes(
    cluster: Cluster, kube_api: client.ApiClient, namespace: str
) -> None:
    labels = {"app": "smoke"}
    deployment = client.V1Deployment(
        metadata=client.V1ObjectMeta(name="smoke"),
        spec=client.V1DeploymentSpec(
            replicas=3,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(
                    containers=[client.V1Container(name="app", image="example.invalid/app:1")]
                ),
            ),
        ),
    )
    client.AppsV1Api(kube_api).create_namespaced_deployment(namespace, deployment)
    core = client.CoreV1Api(kube_api)

    def running_pods() -> list[client.V1Pod] | None:
        pods = core.list_namespaced_pod(namespace, label_selector="app=smoke").items
        running = [p for p in pods if p.status.phase == "Running"]
        return running if len(running) == 3 else None

    pods = wait_until(running_pods, timeout=60, what="3 Running pods")
    kwok_nodes = {
        n.metadata.name
        for n in core.list_node().items
        if n.metadata.annotations.get("kwok.x-k8s.io/node") == "fake"
    }
    assert kwok_nodes, "the cluster has no kwok fake nodes"
    assert {p.spec.node_name for p in pods} <= kwok_nodes

    def deployment_available() -> bool:
        status = client.AppsV1Api(kube_api).read_namespaced_deployment("smoke", namespace).status
        return status.available_replicas == 3

    wait_until(deployment_available, timeout=60, what="deployment available=3")


@pytest.fixture(scope="module")
def widget_crd(cluster: Cluster) -> str:
    cluster.kubectl("apply", "--server-side", "-f", "-", input=SMOKE_CRD)
    cluster.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s", "crd/widgets.smoke.agentpool.dev"
    )
    # Established can precede discovery by a moment; wait until the resource is listable.
    wait_until(
        lambda: cluster.kubectl("get", "widgets", "-A", check=False).returncode == 0,
        timeout=30,
        what="widgets to be served",
    )
    return "widgets.smoke.agentpool.dev"


def _widget(size: object, colour: str = "red") -> str:
    return json.dumps(
        {
            "apiVersion": "smoke.agentpool.dev/v1",
            "kind": "Widget",
            "metadata": {"name": "w"},
            "spec": {"size": size, "colour": colour},
        }
    )


def test_crd_is_served(cluster: Cluster, widget_crd: str, namespace: str) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=_widget(3))
    got = json.loads(cluster.kubectl("get", "widget", "w", "-n", namespace, "-o", "json").stdout)
    assert got["spec"] == {"size": 3, "colour": "red"}


@pytest.mark.parametrize(
    ("size", "colour", "field"),
    [(0, "red", "spec.size"), (11, "red", "spec.size"), (3, "green", "spec.colour")],
)
def test_crd_schema_refuses_invalid_objects_naming_the_field(
    cluster: Cluster, widget_crd: str, namespace: str, size: int, colour: str, field: str
) -> None:
    out = cluster.kubectl(
        "apply", "-n", namespace, "-f", "-", input=_widget(size, colour), check=False
    )
    assert out.returncode != 0
    assert field in out.stderr
    assert "Invalid value" in out.stderr or "Unsupported value" in out.stderr


def test_helm_runs(cluster: Cluster, tmp_path: Path) -> None:
    version = subprocess.run(
        [cluster.tool("helm"), "version", "--short"], capture_output=True, text=True, check=True
    )
    assert version.stdout.startswith("v3.")
    subprocess.run(
        [cluster.tool("helm"), "create", str(tmp_path / "demo")], capture_output=True, check=True
    )
    rendered = subprocess.run(
        [
            cluster.tool("helm"),
            "template",
            "demo",
            str(tmp_path / "demo"),
            "--set",
            "replicaCount=2",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "kind: Deployment" in rendered.stdout
    assert "replicas: 2" in rendered.stdout


def test_redis_round_trips_a_value(redis_url: str) -> None:
    with redis.Redis.from_url(redis_url) as conn:
        conn.set("smoke", "value")
        assert conn.get("smoke") == b"value"
        info = conn.info("server")
        assert info["tcp_port"] == int(redis_url.rsplit(":", 1)[1].split("/")[0])
