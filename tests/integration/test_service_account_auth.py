"""Projected ServiceAccount tokens checked by a real TokenReview on the local control plane.

Pool A's identity is a ServiceAccount; it presents a token with the audience of pool B
(`kubectl create token --audience`, what the kubelet projects); pool B's reviewer
asks the real API server, as its own ServiceAccount bound to `system:auth-delegator`.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from agent_runtime.config.auth import AllowedServiceAccount, KubernetesApi, ServiceAccountAuth
from agent_runtime.credentials import Caller
from agent_runtime.credentials.token_review import TokenReviewer, review_client
from tests.support.cluster import Cluster

AUDIENCE = "agentpool.test/pool-b"


def _api(cluster: Cluster, tmp_path: Path, token: str) -> KubernetesApi:
    kubeconfig = yaml.safe_load(cluster.kubeconfig.read_text())
    entry = kubeconfig["clusters"][0]["cluster"]
    if "certificate-authority-data" in entry:
        ca = tmp_path / "ca.crt"
        ca.write_bytes(base64.b64decode(entry["certificate-authority-data"]))
    else:
        ca = Path(entry["certificate-authority"])
    token_file = tmp_path / "reviewer-token"
    token_file.write_text(token)
    return KubernetesApi(url=entry["server"], token_file=token_file, ca_file=ca)


def _token(cluster: Cluster, namespace: str, account: str, audience: str | None) -> str:
    """A token as the kubelet would project it (None: the API server's own audience)."""
    audience_args = ["--audience", audience] if audience else []
    out = cluster.kubectl(
        "create", "token", account, "-n", namespace, *audience_args, "--duration", "10m"
    )
    return out.stdout.strip()


@pytest.fixture
def reviewer_api(
    cluster: Cluster, namespace: str, kube_api: client.ApiClient, tmp_path: Path
) -> KubernetesApi:
    core = client.CoreV1Api(kube_api)
    for account in ("pool-a", "pool-b", "stranger"):
        core.create_namespaced_service_account(
            namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=account))
        )
    client.RbacAuthorizationV1Api(kube_api).create_cluster_role_binding(
        client.V1ClusterRoleBinding(
            metadata=client.V1ObjectMeta(name=f"{namespace}-pool-b-reviews"),
            role_ref=client.V1RoleRef(
                api_group="rbac.authorization.k8s.io",
                kind="ClusterRole",
                name="system:auth-delegator",
            ),
            subjects=[
                client.RbacV1Subject(kind="ServiceAccount", name="pool-b", namespace=namespace)
            ],
        )
    )
    return _api(cluster, tmp_path, _token(cluster, namespace, "pool-b", None))


async def test_a_projected_token_is_reviewed_and_mapped_to_its_tenant(
    cluster: Cluster, namespace: str, reviewer_api: KubernetesApi
) -> None:
    settings = ServiceAccountAuth(
        audience=AUDIENCE,
        allow=[AllowedServiceAccount(namespace=namespace, name="pool-a", tenant="*")],
        api=reviewer_api,
    )
    async with review_client(settings) as http:
        reviewer = TokenReviewer(settings, http)
        pool_a = _token(cluster, namespace, "pool-a", AUDIENCE)
        assert await reviewer.review(pool_a) == Caller(f"serviceaccount:{namespace}/pool-a", None)
        # Another audience (a token meant for some other service) is refused.
        elsewhere = _token(cluster, namespace, "pool-a", "some-other-service")
        assert await reviewer.review(elsewhere) is None
        # A valid token of a ServiceAccount that is not allowed is refused.
        assert await reviewer.review(_token(cluster, namespace, "stranger", AUDIENCE)) is None
        # A forged token is refused.
        head, payload, _ = pool_a.split(".")
        assert await reviewer.review(f"{head}.{payload}.Zm9yZ2Vk") is None
