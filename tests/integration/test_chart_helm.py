"""The Helm chart: lint, template, schema refusals, install and uninstall on the real cluster."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.crd_install import REPO_ROOT
from tests.support.cluster import Cluster
from tests.support.wait import wait_until

CHART = str(REPO_ROOT / "charts" / "agentpool")

NON_DEFAULT: dict[str, Any] = {
    "image": {"repository": "registry.example.com/agentpool/operator", "tag": "1.2.3"},
    "watchNamespaces": ["team-a", "team-b"],
    "logLevel": "debug",
    "redis": {"enabled": True, "persistence": {"size": "2Gi", "storageClassName": "fast"}},
    "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}}},
    "prometheusRule": {"enabled": True, "taskQueueLagThreshold": 50},
    "grafanaDashboard": {"enabled": True},
    "podAnnotations": {"example.com/owner": "platform"},
}


def _values_file(tmp_path: Path, values: dict[str, Any]) -> str:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return str(path)


def _template(cluster: Cluster, *args: str) -> list[dict[str, Any]]:
    out = cluster.helm("template", "rel", CHART, "--namespace", "agentpool-system", *args)
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def _by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def _pod_specs(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        d["spec"]["template"]["spec"] for d in docs if d["kind"] in ("Deployment", "StatefulSet")
    ]


def _assert_restricted(pod: dict[str, Any]) -> None:
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    for container in pod["containers"]:
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"]
        assert context["readOnlyRootFilesystem"] is True


def test_helm_lint_passes_for_default_and_non_default_values(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.helm("lint", "--strict", CHART)
    cluster.helm("lint", "--strict", CHART, "-f", _values_file(tmp_path, NON_DEFAULT))


def test_template_with_defaults_is_cluster_wide_and_restricted(cluster: Cluster) -> None:
    docs = _template(cluster)
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == sorted(
        [
            "ServiceAccount",
            "ClusterRole",  # the operator's
            "ClusterRole",  # discovery (CRDs, namespaces)
            "ClusterRole",  # aggregated into edit/admin
            "ClusterRole",  # aggregated into view
            "ClusterRoleBinding",
            "ClusterRoleBinding",
            "Deployment",
            "Service",
            "ConfigMap",  # the Grafana dashboard
        ]
    )
    [deployment] = _by_kind(docs, "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["agentpool-operator"]
    assert "--all-namespaces" in container["args"]
    for pod in _pod_specs(docs):
        _assert_restricted(pod)
    rules = next(
        r for r in _by_kind(docs, "ClusterRole") if r["metadata"]["name"] == "rel-agentpool"
    )
    granted = {
        (g, r) for rule in rules["rules"] for g in rule["apiGroups"] for r in rule["resources"]
    }
    assert ("agentpool.dev", "agentpools/status") in granted
    assert ("agentpool.dev", "agentpools/scale") in granted
    assert ("apps", "deployments/scale") in granted
    assert not any(r == "secrets" or r == "*" for _, r in granted)
    dashboard = _by_kind(docs, "ConfigMap")[0]
    assert json.loads(dashboard["data"]["agentpool.json"])["panels"]


def test_template_with_non_default_values(cluster: Cluster, tmp_path: Path) -> None:
    docs = _template(cluster, "-f", _values_file(tmp_path, NON_DEFAULT))
    roles = _by_kind(docs, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    assert len(_by_kind(docs, "RoleBinding")) == 2
    # Only the read-only discovery role is bound cluster-wide.
    [binding] = _by_kind(docs, "ClusterRoleBinding")
    [cluster_role] = [
        r
        for r in _by_kind(docs, "ClusterRole")
        if r["metadata"]["name"] == binding["roleRef"]["name"]
    ]
    assert {r for rule in cluster_role["rules"] for r in rule["resources"]} == {
        "customresourcedefinitions"
    }
    [deployment] = _by_kind(docs, "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.example.com/agentpool/operator:1.2.3"
    assert "--namespace=team-a" in container["args"]
    assert "--namespace=team-b" in container["args"]
    assert "--all-namespaces" not in container["args"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert (
        env["AGENTPOOL_DEFAULT_REDIS_URL"]
        == "redis://rel-agentpool-redis.agentpool-system.svc:6379/0"
    )
    [redis] = _by_kind(docs, "StatefulSet")
    assert "--appendonly" in redis["spec"]["template"]["spec"]["containers"][0]["args"]
    claim = redis["spec"]["volumeClaimTemplates"][0]["spec"]
    assert claim["resources"]["requests"]["storage"] == "2Gi"
    assert claim["storageClassName"] == "fast"
    for pod in _pod_specs(docs):
        _assert_restricted(pod)
    [rule] = _by_kind(docs, "PrometheusRule")
    alerts = {r["alert"] for group in rule["spec"]["groups"] for r in group["rules"]}
    assert alerts == {
        "AgentpoolOperatorDown",
        "AgentpoolReconcileErrors",
        "AgentpoolPoolDegraded",
        "AgentpoolPoolAtMaxReplicas",
        "AgentpoolCircuitOpen",
        "AgentpoolTaskQueueLag",
    }
    assert _by_kind(docs, "ServiceMonitor")[0]["metadata"]["labels"]["release"] == "prom"
    assert _by_kind(docs, "PodMonitor")


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--set", "replicaCount=3"], "/replicaCount"),
        (["--set", "logLevel=loud"], "/logLevel"),
        (["--set", "watchNamespaces={Team_A}"], "/watchNamespaces/0"),
        (["--set", "imagee.tag=1"], "imagee"),
        (["--set", "redis.persistence.size=lots"], "/redis/persistence/size"),
        (["--set", "metrics.port=70000"], "/metrics/port"),
        (["--set", "metrics.service.type=Ingress"], "/metrics/service/type"),
        (["--set-string", "rbac.create=yes"], "/rbac/create"),
    ],
    ids=lambda v: v if isinstance(v, str) else v[-1],
)
def test_invalid_values_are_refused_by_the_schema(
    cluster: Cluster, args: list[str], field: str
) -> None:
    out = cluster.helm("template", "rel", CHART, *args, check=False)
    assert out.returncode != 0
    assert field in out.stderr, out.stderr


def test_install_creates_everything_and_uninstall_removes_it(
    cluster: Cluster, namespace: str
) -> None:
    # Pods of the release are admitted only if they pass the restricted standard.
    cluster.kubectl(
        "label",
        "namespace",
        namespace,
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/enforce-version=latest",
    )
    # Control: the standard is enforced here, so a pod that ignores it is refused.
    careless = cluster.kubectl(
        "run", "careless", "--image=busybox", "-n", namespace, "--restart=Never", check=False
    )
    assert careless.returncode != 0
    assert "violates PodSecurity" in careless.stderr
    release = f"ap-{namespace}"
    fullname = f"{release}-agentpool"
    cluster.helm(
        "install", release, CHART, "--namespace", namespace,
        "--set", "redis.enabled=true",
        "--set", "image.repository=registry.example.com/agentpool/operator",
    )  # fmt: skip
    namespaced = [
        ("deployment", fullname),
        ("serviceaccount", fullname),
        ("service", f"{fullname}-metrics"),
        ("configmap", f"{fullname}-dashboard"),
        ("statefulset", f"{fullname}-redis"),
        ("service", f"{fullname}-redis"),
    ]
    cluster_wide = [
        ("clusterrole", f"{fullname}-edit"),
        ("clusterrole", f"{fullname}-view"),
        ("clusterrole", fullname),
        ("clusterrolebinding", fullname),
        ("clusterrole", f"{fullname}-discovery"),
        ("clusterrolebinding", f"{fullname}-discovery"),
    ]
    for kind, name in namespaced:
        cluster.kubectl("get", kind, name, "-n", namespace)
    for kind, name in cluster_wide:
        cluster.kubectl("get", kind, name)
    cluster.kubectl("get", "crd", "agentpools.agentpool.dev", "agenttools.agentpool.dev")

    def pod_of(component: str) -> bool:
        out = cluster.kubectl(
            "get",
            "pods",
            "-n",
            namespace,
            "-l",
            f"app.kubernetes.io/name={component}",
            "-o",
            "name",
        )
        return bool(out.stdout.strip())

    # The controllers created the pods: the restricted admission let them in.
    wait_until(lambda: pod_of("agentpool-operator"), timeout=60, what="the operator pod")
    wait_until(lambda: pod_of("agentpool-redis"), timeout=60, what="the redis pod")

    # Least privilege, checked by the API server's own authorizer.
    account = f"system:serviceaccount:{namespace}:{fullname}"

    def can(*args: str) -> bool:
        out = cluster.kubectl("auth", "can-i", *args, "--as", account, check=False)
        return out.stdout.strip() == "yes"

    assert can("patch", "agentpools/status", "-n", "default")
    assert can("update", "deployments/scale", "-n", namespace)
    assert can("create", "events", "-n", namespace)
    assert can("list", "pods", "-n", namespace)
    assert not can("get", "secrets", "-n", namespace)
    assert not can("delete", "pods", "-n", namespace)
    assert not can("delete", "agentpools", "-n", namespace)

    # The built-in edit role now covers the new kinds, view reads them.
    cluster.kubectl("create", "serviceaccount", "developer", "-n", namespace)
    cluster.kubectl(
        "create", "rolebinding", "developer-edit", "--clusterrole=edit",
        f"--serviceaccount={namespace}:developer", "-n", namespace,
    )  # fmt: skip
    developer = f"system:serviceaccount:{namespace}:developer"
    wait_until(
        lambda: cluster.kubectl(
            "auth", "can-i", "create", "agentpools", "-n", namespace, "--as", developer,
            check=False,
        ).stdout.strip() == "yes",
        timeout=30,
        what="the edit role to aggregate the agentpool rules",
    )  # fmt: skip

    cluster.helm("uninstall", release, "--namespace", namespace, "--wait", "--timeout", "60s")

    def gone() -> bool:
        return all(
            cluster.kubectl("get", kind, name, "-n", namespace, check=False).returncode != 0
            for kind, name in namespaced + cluster_wide
        )

    wait_until(gone, timeout=60, what="the release's objects to be deleted")


def test_watch_namespaces_limits_rbac_to_those_namespaces(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    release = f"ns-{namespace}"
    fullname = f"{release}-agentpool"
    values = _values_file(
        tmp_path, {"watchNamespaces": [namespace], "grafanaDashboard": {"enabled": False}}
    )
    cluster.helm("install", release, CHART, "--namespace", namespace, "-f", values)
    account = f"system:serviceaccount:{namespace}:{fullname}"
    try:

        def can(*args: str) -> bool:
            out = cluster.kubectl("auth", "can-i", *args, "--as", account, check=False)
            return out.stdout.strip() == "yes"

        assert can("list", "agentpools", "-n", namespace)
        assert can("patch", "deployments", "-n", namespace)
        assert not can("list", "agentpools", "-n", "default")
        assert not can("list", "agentpools", "--all-namespaces")
        assert can("list", "customresourcedefinitions")
        assert cluster.kubectl("get", "clusterrole", fullname, check=False).returncode != 0
        cluster.kubectl("get", "role", fullname, "-n", namespace)
    finally:
        cluster.helm("uninstall", release, "--namespace", namespace, "--wait", "--timeout", "60s")
