"""Pool-as-tool authentication works out of the box: the operator lets the called pool's
ServiceAccount create TokenReviews, through the chart's one ClusterRoleBinding, and
takes that back when the pool goes.

On the real control plane, with the operator running as the chart's ServiceAccount on
the chart's RBAC: pool A uses pool B as an agent tool. Pool B's runtime is a real
`agentpool-agent` process with the runtime config the operator rendered for B (only the
API server's address and B's credentials files changed from in-pod paths to local
ones); it reviews A's projected token (audience `agentpool/NAMESPACE/b`) with a token of
B's own ServiceAccount, not the admin's. Before the operator manages the binding, the
API server refuses B's review (503: the caller did nothing wrong); once it does, A is
let in; when pool B is deleted, its subject leaves the binding.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from tests.integration.crd_install import install_crds
from tests.integration.test_operator_reconcile import Api
from tests.support.audit import AuditWindow, audit_log_path, flush
from tests.support.cluster import TEST_CLUSTER, Cluster
from tests.support.operator_identity import operator_login, remove_chart_rbac
from tests.support.operator_process import operator_running
from tests.support.runtime_process import running_runtime
from tests.support.wait import wait_until

MODEL = {"baseUrl": "http://llm.example.com/v1", "name": "m"}


def _binding_subjects(api: client.ApiClient, name: str) -> list[tuple[str, str, str]]:
    binding = client.RbacAuthorizationV1Api(api).read_cluster_role_binding(name)
    return sorted((s.kind, s.namespace, s.name) for s in binding.subjects or [])


def _token(cluster: Cluster, namespace: str, account: str, audience: str | None = None) -> str:
    """A token as the kubelet projects it (None: the API server's own audience)."""
    audience_args = ["--audience", audience] if audience else []
    out = cluster.kubectl(
        "create", "token", account, "-n", namespace, *audience_args, "--duration", "10m"
    )
    return out.stdout.strip()


def _rendered_config(kube: Api, pool: str) -> dict[str, Any] | None:
    try:
        cm = kube.core.read_namespaced_config_map(f"{pool}-config", kube.ns)
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise
    config: dict[str, Any] = json.loads(cm.data["config.json"])
    return config


def _run_locally(
    config: dict[str, Any], cluster: Cluster, own_token: str, workdir: Path
) -> dict[str, Any]:
    """B's rendered config, pointed at the API server from outside the cluster: the
    in-pod paths of B's own token and the CA become local files."""
    entry = yaml.safe_load(cluster.kubeconfig.read_text())["clusters"][0]["cluster"]
    ca = workdir / "ca.crt"
    if "certificate-authority-data" in entry:
        ca.write_bytes(base64.b64decode(entry["certificate-authority-data"]))
    else:
        ca.write_bytes(Path(entry["certificate-authority"]).read_bytes())
    token = workdir / "own-token"
    token.write_text(own_token)
    token.chmod(0o600)
    accounts = config["auth"]["serviceAccounts"]
    accounts["api"] = {"url": entry["server"], "tokenFile": str(token), "caFile": str(ca)}
    return config


def test_a_called_pool_may_review_its_callers_tokens_once_the_operator_binds_it(
    cluster: Cluster, kube_api: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    install_crds(cluster)
    release = f"tr{namespace[-8:]}"
    binding = f"{release}-agentpool-token-reviewer"
    login = operator_login(
        cluster, kube_api, namespace=namespace, directory=tmp_path, release=release
    )
    kube = Api(kube_api, namespace)
    kube.create("agenttools", "ask-b", {"description": "Ask B.", "agent": {"poolName": "b"}})
    kube.create(
        "agentpools",
        "a",
        {"instructions": "A.", "model": MODEL, "tools": {"refs": [{"name": "ask-b"}]}},
    )
    kube.create("agentpools", "b", {"instructions": "B.", "model": MODEL})
    env = {"KUBECONFIG": str(login.kubeconfig), "AGENTPOOL_OPERATOR_NAMESPACE": namespace}
    log = tmp_path / "operator.log"
    workdir = tmp_path / "pool-b"
    workdir.mkdir()
    try:
        # First without managing the binding: the operator renders B's config (A is
        # allowed, by TokenReview) and B's ServiceAccount, and nothing else.
        with operator_running(cluster, [namespace], log, env):
            rendered = wait_until(
                lambda: _rendered_config(kube, "b"), timeout=60, what="b's runtime config"
            )
        accounts = rendered["auth"]["serviceAccounts"]
        assert accounts["audience"] == f"agentpool/{namespace}/b"
        assert accounts["allow"] == [{"namespace": namespace, "name": "a", "tenant": "*"}]
        assert _binding_subjects(kube_api, binding) == []
        config = _run_locally(rendered, cluster, _token(cluster, namespace, "b"), workdir)
        as_a = _token(cluster, namespace, "a", f"agentpool/{namespace}/b")
        with running_runtime(config, workdir) as pool_b, pool_b.client(as_a) as caller:
            # B may not create TokenReviews: it cannot tell who A is (503, not 401).
            refused = caller.get("/v1/tools")
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"]["type"] == "CredentialsUnavailableError"
            assert "may not create tokenreviews" in pool_b.log_tail(20_000)

            window = AuditWindow.starting_now(audit_log_path(TEST_CLUSTER), user=login.user)
            managed = {**env, "AGENTPOOL_TOKEN_REVIEWER_BINDING": binding}
            with operator_running(cluster, [namespace], log, managed) as operator:
                wait_until(
                    lambda: (
                        _binding_subjects(kube_api, binding) == [("ServiceAccount", namespace, "b")]
                    ),
                    timeout=60,
                    what=f"b in the binding (operator log: {operator.log})",
                )
                # The authorizer sees the new subject through its informer: soon.
                wait_until(
                    lambda: caller.get("/v1/tools").status_code == 200,
                    timeout=30,
                    what="A let in by B",
                )
                assert "TokenReviews allowed again" in pool_b.log_tail(20_000)
                # B reviews now, and still refuses who is not allowed.
                stranger = _token(cluster, namespace, "a", "some-other-audience")
                assert caller.get("/v1/tools").status_code == 200
                with pool_b.client(stranger) as other:
                    assert other.get("/v1/tools").status_code == 401

                kube.custom.delete_namespaced_custom_object(
                    "agentpool.dev", "v1alpha1", namespace, "agentpools", "b"
                )
                wait_until(
                    lambda: _binding_subjects(kube_api, binding) == [],
                    timeout=60,
                    what="b's subject removed with the pool",
                )
            window.close()
        flush(window.path, kube_api)
        events = window.events()
        refused_requests = sorted({(e.verb, e.resource) for e in events if e.code == 403})
        assert not refused_requests, f"the chart's RBAC refused the operator: {refused_requests}"
        patches = [
            e for e in events if e.resource.endswith("clusterrolebindings") and e.verb == "patch"
        ]
        assert len(patches) == 2, patches  # b added, b removed: nothing else
    finally:
        remove_chart_rbac(cluster, namespace=namespace, release=release)
