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


def _env(container: dict[str, Any]) -> dict[str, Any]:
    """Env by name: the value, or the downward-API fieldRef."""
    return {
        e["name"]: e["value"] if "value" in e else e["valueFrom"]["fieldRef"]
        for e in container["env"]
    }


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
            "ClusterRole",  # create tokenreviews, for the pools that review tokens
            "ClusterRole",  # the operator may keep that one binding's subjects
            "ClusterRoleBinding",
            "ClusterRoleBinding",
            "ClusterRoleBinding",  # the pools' token reviewers (no subjects in the chart)
            "ClusterRoleBinding",  # the operator's token-reviewer manager role
            "Role",  # leader election: the Lease, in the release namespace
            "RoleBinding",
            "Deployment",
            "PodDisruptionBudget",  # two replicas
            "NetworkPolicy",
            "Service",
            "ConfigMap",  # the Grafana dashboard
        ]
    )
    [deployment] = _by_kind(docs, "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["agentpool-operator"]
    assert "args" not in container  # configured by environment only
    env = _env(container)
    assert env["AGENTPOOL_WATCH_NAMESPACES"] == ""  # every namespace
    assert env["AGENTPOOL_LEADER_ELECT"] == "true"
    assert env["AGENTPOOL_HEALTH_PORT"] == "8080"
    assert env["AGENTPOOL_METRICS_PORT"] == "9090"
    assert env["AGENTPOOL_AGENT_IMAGE"].startswith("ghcr.io/agentpool/agent:")
    assert env["AGENTPOOL_OPERATOR_NAMESPACE"] == {"fieldPath": "metadata.namespace"}
    assert env["AGENTPOOL_POD_NAME"] == {"fieldPath": "metadata.name"}
    assert "AGENTPOOL_DEFAULT_REDIS_URL" not in env
    # Two replicas, one active through the Lease; a rolling update never drops below two.
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    # Liveness and readiness are different questions.
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["tcpSocket"] == {"port": "metrics"}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"health": 8080, "metrics": 9090}
    for pod in _pod_specs(docs):
        _assert_restricted(pod)
        for c in pod["containers"]:
            assert {"cpu", "memory", "ephemeral-storage"} <= set(c["resources"]["limits"])
            assert {"cpu", "memory", "ephemeral-storage"} <= set(c["resources"]["requests"])
    [lease_role] = _by_kind(docs, "Role")
    assert lease_role["metadata"]["namespace"] == "agentpool-system"
    assert lease_role["rules"] == [
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "verbs": ["get", "create", "update"],
        }
    ]
    [policy] = _by_kind(docs, "NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert policy["spec"]["ingress"] == [{"ports": [{"port": "metrics", "protocol": "TCP"}]}]
    rules = next(
        r for r in _by_kind(docs, "ClusterRole") if r["metadata"]["name"] == "rel-agentpool"
    )
    granted = {
        (g, r): set(rule["verbs"])
        for rule in rules["rules"]
        for g in rule["apiGroups"]
        for r in rule["resources"]
    }
    # Exactly what the operator uses, and no more.
    children = {"get", "list", "watch", "create", "patch", "delete"}
    assert granted == {
        ("agentpool.dev", "agentpools"): {"get", "list", "watch", "patch"},
        ("agentpool.dev", "agenttools"): {"get", "list", "watch", "patch"},
        ("agentpool.dev", "agentpools/status"): {"patch"},
        ("agentpool.dev", "agenttools/status"): {"patch"},
        ("agentpool.dev", "agentpools/scale"): {"get", "patch", "update"},
        ("", "configmaps"): children,
        ("", "services"): children,
        ("", "serviceaccounts"): children,
        ("apps", "deployments"): children,
        ("policy", "poddisruptionbudgets"): children,
        ("networking.k8s.io", "networkpolicies"): children,
        ("autoscaling", "horizontalpodautoscalers"): children,
        ("", "secrets"): {"get", "list", "watch"},  # resource versions, for rollouts
        ("", "pods"): {"get", "patch"},  # the autoscaler's pod-deletion-cost
        ("", "events"): {"create", "patch"},
        ("events.k8s.io", "events"): {"create", "patch"},
    }
    _assert_token_review_rbac(docs, "rel-agentpool")
    assert env["AGENTPOOL_TOKEN_REVIEWER_BINDING"] == "rel-agentpool-token-reviewer"
    dashboard = _by_kind(docs, "ConfigMap")[0]
    assert json.loads(dashboard["data"]["agentpool.json"])["panels"]


def _assert_token_review_rbac(docs: list[dict[str, Any]], fullname: str) -> None:
    """One narrow role for the pools, one binding of it with no subjects (the operator's
    to fill), and the operator allowed that binding and that role by name only."""
    reviewer = f"{fullname}-token-reviewer"
    roles = {r["metadata"]["name"]: r for r in _by_kind(docs, "ClusterRole")}
    bindings = {b["metadata"]["name"]: b for b in _by_kind(docs, "ClusterRoleBinding")}
    assert roles[reviewer]["rules"] == [
        {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]}
    ]
    assert bindings[reviewer]["roleRef"]["name"] == reviewer
    assert "subjects" not in bindings[reviewer]
    assert roles[f"{reviewer}-manager"]["rules"] == [
        {
            "apiGroups": ["rbac.authorization.k8s.io"],
            "resources": ["clusterrolebindings"],
            "resourceNames": [reviewer],
            "verbs": ["get", "patch"],
        },
        {
            "apiGroups": ["rbac.authorization.k8s.io"],
            "resources": ["clusterroles"],
            "resourceNames": [reviewer],
            "verbs": ["bind"],
        },
    ]
    manager = bindings[f"{reviewer}-manager"]
    assert manager["roleRef"]["name"] == f"{reviewer}-manager"
    assert [s["name"] for s in manager["subjects"]] == [fullname]


def test_template_with_non_default_values(cluster: Cluster, tmp_path: Path) -> None:
    docs = _template(cluster, "-f", _values_file(tmp_path, NON_DEFAULT))
    roles = _by_kind(docs, "Role")
    # The operator's Role in each watched namespace, and the Lease's in its own.
    assert sorted(r["metadata"]["namespace"] for r in roles) == [
        "agentpool-system",
        "team-a",
        "team-b",
    ]
    assert len(_by_kind(docs, "RoleBinding")) == 3
    # Cluster-wide, only the read-only discovery role and the token-reviewer binding.
    _assert_token_review_rbac(docs, "rel-agentpool")
    [binding] = [
        b
        for b in _by_kind(docs, "ClusterRoleBinding")
        if not b["metadata"]["name"].startswith("rel-agentpool-token-reviewer")
    ]
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
    env = _env(container)
    assert env["AGENTPOOL_WATCH_NAMESPACES"] == "team-a,team-b"
    assert env["AGENTPOOL_LOG_LEVEL"] == "debug"
    assert (
        env["AGENTPOOL_DEFAULT_REDIS_URL"]
        == "redis://rel-agentpool-redis.agentpool-system.svc:6379/0"
    )
    [redis] = _by_kind(docs, "StatefulSet")
    assert "--appendonly" in redis["spec"]["template"]["spec"]["containers"][0]["args"]
    # The StatefulSet's governing Service exists and is headless.
    [headless] = [
        s
        for s in _by_kind(docs, "Service")
        if s["metadata"]["name"] == redis["spec"]["serviceName"]
    ]
    assert headless["spec"]["clusterIP"] == "None"
    # Redis takes connections from agent pods only; the operator on its metrics port only.
    policies = {p["metadata"]["name"]: p["spec"] for p in _by_kind(docs, "NetworkPolicy")}
    assert set(policies) == {"rel-agentpool", "rel-agentpool-redis"}
    [redis_from] = policies["rel-agentpool-redis"]["ingress"][0]["from"]
    assert redis_from["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "agentpool-agent"}
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
    [pods] = _by_kind(docs, "PodMonitor")
    # Agent pods' series carry their pool (the dashboard filters by it).
    [endpoint] = pods["spec"]["podMetricsEndpoints"]
    assert endpoint["relabelings"][0]["targetLabel"] == "pool"
    assert endpoint["honorLabels"] is True


def test_template_with_the_metrics_api(cluster: Cluster) -> None:
    docs = _template(cluster, "--set", "metricsApi.enabled=true")
    # The operator, not the chart, writes the APIService (with its certificate's CA, and
    # only if no other adapter owns it).
    assert not _by_kind(docs, "APIService")
    [service] = [s for s in _by_kind(docs, "Service") if s["metadata"]["name"].endswith("-api")]
    assert service["metadata"]["name"] == "rel-agentpool-metrics-api"
    assert "selector" not in service["spec"]  # the leader writes its EndpointSlice
    assert service["spec"]["ports"] == [{"name": "https", "port": 443, "protocol": "TCP"}]
    [deployment] = _by_kind(docs, "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = _env(container)
    assert env["AGENTPOOL_METRICS_API_PORT"] == "6443"
    assert env["AGENTPOOL_METRICS_API_SERVICE"] == "rel-agentpool-metrics-api"
    assert env["AGENTPOOL_METRICS_API_SERVICE_PORT"] == "443"
    assert env["AGENTPOOL_POD_IP"] == {"fieldPath": "status.podIP"}
    assert {p["name"]: p["containerPort"] for p in container["ports"]}["metrics-api"] == 6443
    [policy] = _by_kind(docs, "NetworkPolicy")
    assert {"ports": [{"port": "metrics-api", "protocol": "TCP"}]} in policy["spec"]["ingress"]
    bindings = {
        (b["kind"], b["metadata"].get("namespace"), b["roleRef"]["name"])
        for b in _by_kind(docs, "ClusterRoleBinding") + _by_kind(docs, "RoleBinding")
    }
    assert ("ClusterRoleBinding", None, "system:auth-delegator") in bindings
    assert (
        "RoleBinding",
        "kube-system",
        "extension-apiserver-authentication-reader",
    ) in bindings
    [apiservices] = [
        r
        for r in _by_kind(docs, "ClusterRole")
        if r["metadata"]["name"] == "rel-agentpool-metrics-api"
    ]
    assert apiservices["rules"] == [
        {
            "apiGroups": ["apiregistration.k8s.io"],
            "resources": ["apiservices"],
            "verbs": ["create"],
        },
        {
            "apiGroups": ["apiregistration.k8s.io"],
            "resources": ["apiservices"],
            "resourceNames": ["v1beta2.custom.metrics.k8s.io"],
            "verbs": ["get", "update", "delete"],
        },
        {
            "apiGroups": ["rbac.authorization.k8s.io"],
            "resources": ["clusterroles"],
            "resourceNames": ["rel-agentpool-metrics-api"],
            "verbs": ["get"],
        },
    ]
    # That ClusterRole owns the APIService, so that uninstalling removes it.
    assert env["AGENTPOOL_METRICS_API_OWNER"] == "rel-agentpool-metrics-api"
    [slices] = [
        r for r in _by_kind(docs, "Role") if r["metadata"]["name"] == "rel-agentpool-metrics-api"
    ]
    assert slices["metadata"]["namespace"] == "agentpool-system"
    assert slices["rules"] == [
        {
            "apiGroups": ["discovery.k8s.io"],
            "resources": ["endpointslices"],
            "verbs": ["create", "patch"],
        }
    ]


def test_template_with_the_activator(cluster: Cluster) -> None:
    docs = _template(cluster, "--set", "activator.enabled=true")
    [deployment] = _by_kind(docs, "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = _env(container)
    assert env["AGENTPOOL_ACTIVATOR_PORT"] == "8081"
    assert env["AGENTPOOL_ACTIVATOR_WAIT_SECONDS"] == "60"
    assert env["AGENTPOOL_ACTIVATOR_MAX_HELD"] == "100"
    # The activator slices name the leader's own pod IP.
    assert env["AGENTPOOL_POD_IP"] == {"fieldPath": "status.podIP"}
    assert {p["name"]: p["containerPort"] for p in container["ports"]}["activator"] == 8081
    [policy] = _by_kind(docs, "NetworkPolicy")
    assert {"ports": [{"port": "activator", "protocol": "TCP"}]} in policy["spec"]["ingress"]
    rules = next(
        r for r in _by_kind(docs, "ClusterRole") if r["metadata"]["name"] == "rel-agentpool"
    )
    granted = {
        (g, r): set(rule["verbs"])
        for rule in rules["rules"]
        for g in rule["apiGroups"]
        for r in rule["resources"]
    }
    # Watch the pools' slices, keep the activator's own: no update, no deletecollection.
    assert granted[("discovery.k8s.io", "endpointslices")] == {
        "get",
        "list",
        "watch",
        "create",
        "patch",
        "delete",
    }
    defaults = _template(cluster)
    assert not any(
        "endpointslices" in rule["resources"]
        for role in _by_kind(defaults, "ClusterRole")
        for rule in role["rules"]
    )


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--set", "replicaCount=-1"], "/replicaCount"),
        (["--set", "replicaCount=2", "--set", "leaderElection.enabled=false"], "/replicaCount"),
        (["--set", "logLevel=loud"], "/logLevel"),
        (["--set", "watchNamespaces={Team_A}"], "/watchNamespaces/0"),
        (["--set", "imagee.tag=1"], "imagee"),
        (["--set", "redis.persistence.size=lots"], "/redis/persistence/size"),
        (["--set", "metrics.port=70000"], "/metrics/port"),
        (["--set", "metrics.service.type=Ingress"], "/metrics/service/type"),
        (["--set", "metricsApi.port=0"], "/metricsApi/port"),
        (["--set-string", "metricsApi.enabled=yes"], "/metricsApi/enabled"),
        (["--set-string", "rbac.create=yes"], "/rbac/create"),
        (["--set", "activator.waitSeconds=0"], "/activator/waitSeconds"),
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
        ("service", f"{fullname}-redis-headless"),
        ("poddisruptionbudget", fullname),
        ("networkpolicy", fullname),
        ("networkpolicy", f"{fullname}-redis"),
        ("role", f"{fullname}-leader-election"),
        ("rolebinding", f"{fullname}-leader-election"),
    ]
    cluster_wide = [
        ("clusterrole", f"{fullname}-edit"),
        ("clusterrole", f"{fullname}-view"),
        ("clusterrole", fullname),
        ("clusterrolebinding", fullname),
        ("clusterrole", f"{fullname}-discovery"),
        ("clusterrolebinding", f"{fullname}-discovery"),
        ("clusterrole", f"{fullname}-token-reviewer"),
        ("clusterrolebinding", f"{fullname}-token-reviewer"),
        ("clusterrole", f"{fullname}-token-reviewer-manager"),
        ("clusterrolebinding", f"{fullname}-token-reviewer-manager"),
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

    # (`kubectl auth can-i VERB a/b` asks about the object named b: subresources need a flag.)
    assert can("patch", "agentpools", "--subresource=status", "-n", "default")
    assert not can("update", "agentpools", "--subresource=status", "-n", "default")
    assert can("update", "agentpools", "--subresource=scale", "-n", "default")
    assert can("patch", "networkpolicies", "-n", namespace)
    assert can("create", "events", "-n", namespace)
    assert can("watch", "secrets", "-n", namespace)
    assert not can("patch", "secrets", "-n", namespace)
    assert not can("list", "pods", "-n", namespace)
    assert not can("update", "deployments", "-n", namespace)
    assert not can("delete", "agentpools", "-n", namespace)
    # The Lease: in the release namespace only.
    assert can("update", "leases", "-n", namespace)
    assert not can("update", "leases", "-n", "default")

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

    # The token-reviewer binding's subjects are the operator's: written as the operator
    # writes them (server-side apply, its field manager), a helm upgrade leaves them.
    reviewer = f"{fullname}-token-reviewer"
    subject = {"kind": "ServiceAccount", "name": "billing", "namespace": namespace}
    applied = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": reviewer},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": reviewer,
        },
        "subjects": [subject],
    }
    cluster.kubectl(
        "apply", "--server-side", "--field-manager=agentpool-operator", "--force-conflicts",
        "-f", "-", input=json.dumps(applied),
    )  # fmt: skip
    cluster.helm(
        "upgrade", release, CHART, "--namespace", namespace, "--reuse-values",
        "--set", "logLevel=debug",
    )  # fmt: skip
    after = json.loads(cluster.kubectl("get", "clusterrolebinding", reviewer, "-o", "json").stdout)
    assert after["subjects"] == [subject]

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
        # RBAC itself: that one binding and that one role, by name, nothing else.
        reviewer = f"{fullname}-token-reviewer"
        assert can("patch", f"clusterrolebinding/{reviewer}")
        assert can("bind", f"clusterrole/{reviewer}")
        assert not can("create", "clusterrolebindings")
        assert not can("delete", f"clusterrolebinding/{reviewer}")
        assert not can("patch", f"clusterrolebinding/{fullname}-discovery")
        assert not can("bind", "clusterrole/cluster-admin")
        assert not can("create", "tokenreviews")  # the pools review, not the operator
    finally:
        cluster.helm("uninstall", release, "--namespace", namespace, "--wait", "--timeout", "60s")
