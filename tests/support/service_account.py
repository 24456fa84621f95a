"""A kubeconfig that acts as a ServiceAccount, so a process runs as its own identity.

The audit log tells writers apart by user; the operator run out of cluster must
therefore not be the admin. `service_account_login` creates the ServiceAccount, asks the
API server for a token (TokenRequest) and writes a kubeconfig with the admin's server
and CA and that token. RBAC is the caller's business (apply the chart's rules, or a Role).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from kubernetes import client, config

from tests.support.cluster import Cluster


@dataclass(frozen=True)
class ServiceAccountLogin:
    kubeconfig: Path
    user: str
    """The username the API server (and its audit log) knows it by."""

    def api_client(self) -> client.ApiClient:
        return config.new_client_from_config(config_file=str(self.kubeconfig))


def service_account_login(
    cluster: Cluster,
    api: client.ApiClient,
    *,
    namespace: str,
    name: str,
    directory: Path,
    expiration_seconds: int = 3600,
) -> ServiceAccountLogin:
    core = client.CoreV1Api(api)
    try:
        core.create_namespaced_service_account(
            namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=name))
        )
    except client.ApiException as exc:
        if exc.status != 409:
            raise
    token = core.create_namespaced_service_account_token(
        name,
        namespace,
        client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=expiration_seconds)
        ),
    ).status.token
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    context = next(c for c in admin["contexts"] if c["name"] == admin.get("current-context"))
    cluster_entry = next(c for c in admin["clusters"] if c["name"] == context["context"]["cluster"])
    user = f"system:serviceaccount:{namespace}:{name}"
    login = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster_entry],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": user, "context": {"cluster": cluster_entry["name"], "user": user}}],
        "current-context": user,
    }
    path = directory / f"kubeconfig-{namespace}-{name}.yaml"
    path.write_text(yaml.safe_dump(login))
    path.chmod(0o600)
    return ServiceAccountLogin(kubeconfig=path, user=user)
