"""Who may call the runtime's API: the `auth` section of the runtime config.

Two kinds of credentials, both what Kubernetes users expect:

- **Bearer tokens** from a file the operator mounts from a Secret the pool references
  (`tokensFile`); each token is bound to one tenant, or to any tenant (`"*"`) for a
  trusted caller such as a gateway. The file is re-read when it changes (a Secret
  update reaches the pod without a restart).
- **Projected ServiceAccount tokens** with an audience (`serviceAccounts`), checked by a
  TokenReview against the Kubernetes API, so a pool that calls another pool as a tool
  calls it as its own identity. Each allowed ServiceAccount is bound to a tenant or to
  any tenant.

Authentication is on unless `mode: disabled` is written; a runtime with `mode:
required` and no credential source refuses every request (it fails closed). Turning it
off is logged at start-up and shown on `/readyz`. For example::

    auth:
      mode: required
      tokensFile: /etc/agentpool/auth/tokens.yaml
      serviceAccounts:
        audience: agentpool/shop/support
        allow:
          - {namespace: shop, name: agentpool-triage, tenant: "*"}
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from agent_runtime.config.limits import (
    KUBERNETES_NAMESPACE_MAX_CHARS,
    KUBERNETES_NAMESPACE_PATTERN,
    TENANT_MAX_CHARS,
    TENANT_PATTERN,
)
from agent_runtime.config.section import ConfigSection

ANY_TENANT = "*"
"""The tenant of a credential trusted to act for any tenant (a gateway, another pool)."""

TENANT_OR_ANY_PATTERN = rf"(\*|{TENANT_PATTERN.removeprefix('^').removesuffix('$')})"
TENANT_OR_ANY = rf"^{TENANT_OR_ANY_PATTERN}$"

IN_CLUSTER_TOKEN_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
IN_CLUSTER_CA_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/ca.crt")


class KubernetesApi(ConfigSection):
    """How the runtime reaches the Kubernetes API for TokenReviews (in-cluster defaults)."""

    url: str = Field(
        default="https://kubernetes.default.svc",
        pattern=r"^https?://",
        description="The API server's URL.",
    )
    token_file: Path = Field(
        default=IN_CLUSTER_TOKEN_FILE,
        description="The runtime's own token (its ServiceAccount needs `create` on "
        "`tokenreviews`, e.g. the `system:auth-delegator` ClusterRole).",
    )
    ca_file: Path | None = Field(
        default=IN_CLUSTER_CA_FILE,
        description="The API server's CA bundle; null: the system's trust store.",
    )


class AllowedServiceAccount(ConfigSection):
    """A ServiceAccount that may call this pool, and the tenant it may act for."""

    namespace: str = Field(
        pattern=KUBERNETES_NAMESPACE_PATTERN,
        max_length=KUBERNETES_NAMESPACE_MAX_CHARS,
        description="The ServiceAccount's namespace.",
    )
    name: str | None = Field(
        default=None,
        min_length=1,
        max_length=253,
        description="The ServiceAccount's name; null: every ServiceAccount of the namespace.",
    )
    tenant: str = Field(
        pattern=TENANT_OR_ANY,
        max_length=TENANT_MAX_CHARS,
        description='The tenant it acts for, or "*" for any tenant.',
    )


class ServiceAccountAuth(ConfigSection):
    """Projected ServiceAccount tokens, checked by TokenReview."""

    audience: str = Field(
        min_length=1,
        max_length=253,
        description="The audience the projected token must carry (the caller's "
        "`serviceAccountToken.audience`).",
    )
    allow: list[AllowedServiceAccount] = Field(
        default_factory=list, description="Who may call, and for which tenant."
    )
    cache_seconds: float = Field(
        default=60.0,
        ge=0,
        le=600,
        description="How long a successful review is reused (never beyond the token's expiry "
        "as the API server reports it).",
    )
    api: KubernetesApi = Field(default_factory=KubernetesApi, description="The Kubernetes API.")


class AuthConfig(ConfigSection):
    """Authentication of the runtime's API (the probes `/healthz`, `/readyz`, `/metrics`
    are always open)."""

    mode: Literal["required", "disabled"] = Field(
        default="required",
        description="`disabled` lets every caller act for any tenant: only for a runtime "
        "no one else can reach. Logged at start-up and shown on /readyz.",
    )
    tokens_file: Path | None = Field(
        default=None,
        description="A YAML/JSON file (mounted from a Secret) of bearer tokens: "
        '`tokens: [{name, token, tenant}]`, tenant "*" for any tenant.',
    )
    service_accounts: ServiceAccountAuth | None = Field(
        default=None, description="Projected ServiceAccount tokens (TokenReview)."
    )
