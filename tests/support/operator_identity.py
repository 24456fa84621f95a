"""The operator's own identity for out-of-cluster runs: the chart's ServiceAccount and RBAC.

`operator_login` renders the chart's ServiceAccount, (Cluster)Roles and bindings with
`helm template`, applies exactly those, and returns a kubeconfig for that ServiceAccount.
An operator started with it has what the chart grants and nothing more (a missing rule
shows up as a 403 in the test, not in a user's cluster), and its requests carry its own
name in the audit log.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from tests.support.cluster import Cluster
from tests.support.redis_server import REPO_ROOT
from tests.support.service_account import ServiceAccountLogin, service_account_login
from tests.support.wait import wait_until

CHART = REPO_ROOT / "charts" / "agentpool"
RBAC_KINDS = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}


def chart_rbac(
    cluster: Cluster,
    *,
    namespace: str,
    release: str,
    watch_namespaces: Sequence[str] = (),
    values: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """The chart's identity objects for a release, as `helm template` renders them
    (`values`: more `--set` assignments, e.g. "metricsApi.enabled=true")."""
    args = ["template", release, str(CHART), "--namespace", namespace]
    args += ["--set", "rbac.aggregateToDefaultRoles=false"]
    for value in values:
        args += ["--set", value]
    if watch_namespaces:
        args += ["--set", "watchNamespaces={" + ",".join(watch_namespaces) + "}"]
    out = cluster.helm(*args)
    return [d for d in yaml.safe_load_all(out.stdout) if d and d["kind"] in RBAC_KINDS]


def operator_login(
    cluster: Cluster,
    api: client.ApiClient,
    *,
    namespace: str,
    directory: Path,
    release: str = "ap",
    watch_namespaces: Sequence[str] = (),
    values: Sequence[str] = (),
) -> ServiceAccountLogin:
    """Apply the chart's RBAC for `release` in `namespace`; a kubeconfig acting as it.

    Cluster-scoped objects are named after the release: use a release name per test
    when tests run side by side, and `remove_chart_rbac` afterwards.
    """
    objects = chart_rbac(
        cluster,
        namespace=namespace,
        release=release,
        watch_namespaces=watch_namespaces,
        values=values,
    )
    cluster.kubectl(
        "apply", "--server-side", "--field-manager=agentpool-tests", "-f", "-",
        input=yaml.safe_dump_all(objects),
    )  # fmt: skip
    [account] = [o for o in objects if o["kind"] == "ServiceAccount"]
    login = service_account_login(
        cluster,
        api,
        namespace=namespace,
        name=account["metadata"]["name"],
        directory=directory,
    )
    # The authorizer learns new bindings through an informer: wait until it has.
    wait_until(
        lambda: _allowed(api, login.user, namespace, "create", "leases", "coordination.k8s.io"),
        timeout=30,
        what="the chart's RBAC to take effect",
    )
    return login


def remove_chart_rbac(
    cluster: Cluster, *, namespace: str, release: str = "ap", values: Sequence[str] = ()
) -> None:
    """Delete the cluster-scoped objects `operator_login` applied, and those in other
    namespaces than the release's (kube-system's RoleBinding of the metrics API); the
    release namespace's go with it."""
    for obj in chart_rbac(cluster, namespace=namespace, release=release, values=values):
        where = obj["metadata"].get("namespace")
        if obj["kind"] in ("ClusterRole", "ClusterRoleBinding"):
            cluster.kubectl(
                "delete", obj["kind"].lower(), obj["metadata"]["name"], "--ignore-not-found"
            )
        elif where and where != namespace:
            cluster.kubectl(
                "-n", where, "delete", obj["kind"].lower(), obj["metadata"]["name"],
                "--ignore-not-found",
            )  # fmt: skip


def _allowed(
    api: client.ApiClient, user: str, namespace: str, verb: str, resource: str, group: str
) -> bool:
    review = client.AuthorizationV1Api(api).create_subject_access_review(
        client.V1SubjectAccessReview(
            spec=client.V1SubjectAccessReviewSpec(
                user=user,
                groups=["system:serviceaccounts", "system:authenticated"],
                resource_attributes=client.V1ResourceAttributes(
                    namespace=namespace, verb=verb, resource=resource, group=group
                ),
            )
        )
    )
    return bool(review.status.allowed)
