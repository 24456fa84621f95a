"""The operator's own settings, read from its environment in one place.

The chart sets these variables; a developer running the operator out of cluster sets the
ones they need (only the agent image matters for a first try). Flags of
`agentpool-operator` override the namespaces and ports.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, IPvAnyAddress, field_validator

from agentpool_operator import __version__

FIELD_MANAGER = "agentpool-operator"
"""The one field manager of every server-side apply the operator makes."""

DEFAULT_AGENT_IMAGE = f"ghcr.io/agentpool/agent:{__version__}"


class OperatorSettings(BaseModel):
    """Everything the operator decides for all pools, and how it runs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    agent_image: str = Field(default=DEFAULT_AGENT_IMAGE, min_length=1, pattern=r"^\S+$")
    """Image of the agent pods, unless a pool's podTemplate names one."""
    default_redis_url: str | None = Field(default=None, pattern=r"^rediss?://")
    """Redis of pools that name none (the chart's Redis); unset: such pools keep working
    memory only."""
    watch_namespaces: tuple[str, ...] = ()
    """Namespaces to watch; empty: the whole cluster."""
    operator_namespace: str = "agentpool-system"
    """Where the operator runs: its Lease lives there and its pods may call agent pods."""
    pod_name: str = "agentpool-operator-local"
    """This replica's identity in the Lease."""
    leader_elect: bool = False
    """Run as one of several replicas, only the Lease holder active."""
    lease_duration_seconds: float = Field(default=15.0, gt=0, le=300)
    """How long a leader's Lease lasts without renewal (client-go's default)."""
    lease_renew_deadline_seconds: float = Field(default=10.0, gt=0, le=300)
    """A leader that could not renew for this long steps down."""
    lease_retry_seconds: float = Field(default=2.0, gt=0, le=60)
    """How often candidates try and the leader renews."""
    health_port: int = Field(default=8080, ge=0, le=65535)
    """Port of GET /healthz; 0 disables."""
    metrics_port: int = Field(default=9090, ge=0, le=65535)
    """Port of GET /metrics; 0 disables."""
    metrics_api_port: int = Field(default=0, ge=0, le=65535)
    """Port of the custom.metrics.k8s.io server (HPA mode's pool load, HTTPS); 0 (the
    default) disables it. Served by the leader only."""
    metrics_api_service: str = Field(
        default="agentpool-operator-metrics-api", pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
    )
    """The Service in operator_namespace that the operator's APIService points at."""
    metrics_api_service_port: int = Field(default=443, ge=1, le=65535)
    """That Service's port (the aggregator dials the Service, not the pod)."""
    metrics_api_owner: str | None = Field(
        default=None, pattern=r"^[a-z0-9]([-a-z0-9.:]*[a-z0-9])?$"
    )
    """A ClusterRole (the chart's) made the owner of the APIService, so that deleting
    the installation deletes the APIService; unset: it stays until deleted by hand."""
    pod_ip: IPvAnyAddress | None = None
    """This replica's pod IP (the chart passes it): with the metrics API on, the leader
    points the metrics-API Service's EndpointSlice at it, so that the aggregator reaches
    the one replica that has the load. Unset out of cluster (the Service is the user's)."""
    activator_port: int = Field(default=0, ge=0, le=65535)
    """Port of the activator (docs/autoscaling.md, "Zero and back"): requests for a pool
    scaled to zero are held there while it wakes; 0 (the default) disables it. Served by
    the leader only, which also keeps the pools' activator EndpointSlices."""
    activator_address: IPvAnyAddress | None = None
    """The address the activator EndpointSlices name (the Service's clients dial it);
    unset: pod_ip. Out of cluster, an address the pod runner maps to this process
    (EndpointSlices refuse loopback addresses)."""
    activator_wait_seconds: float = Field(default=60.0, gt=0, le=3600)
    """How long a request waits for its pool to wake before a 503 with Retry-After."""
    activator_max_held: int = Field(default=100, ge=1, le=100_000)
    """Requests held at once per pool; more get a 503 at once."""
    activator_max_body_bytes: int = Field(default=1 << 20, ge=1024, le=1 << 30)
    """The largest request body the activator holds (413 beyond): match the pools'
    `--max-body-bytes` if they raise theirs. All held bodies together stay within 64
    times this (503 with Retry-After beyond)."""
    activator_pod_proxy: str | None = Field(default=None, pattern=r"^https?://")
    """An HTTP proxy through which the activator reaches pods; unset in the cluster (pod
    IPs are routable). Out of cluster: the pod runner's pod network."""
    workers: int = Field(default=16, ge=1, le=256)
    """Pools reconciled at once."""
    agent_port: int = Field(default=8080, ge=1, le=65535)
    """Port the agent pods serve their API on."""
    resync_seconds: float = Field(default=600.0, gt=0, le=86_400)
    """Every pool is reconciled at least this often even without an event (one timer for
    all pools; a reconcile with nothing to change writes nothing)."""
    discovery_seconds: float = Field(default=300.0, gt=0, le=86_400)
    """How often every MCP server is asked again for its tools (off the reconcile path;
    a status is written only when the answer changes)."""
    token_reviewer_binding: str | None = Field(default=None, min_length=1, max_length=253)
    """The ClusterRoleBinding (made by the chart, to a ClusterRole that allows only
    `create tokenreviews`) whose subjects the operator keeps equal to the ServiceAccounts
    of the pools that review projected tokens; unset: not managed (bind them yourself)."""
    watch_timeout_seconds: int | None = Field(default=None, ge=1, le=3600)
    """How long one watch request lasts before kopf lists and watches again; unset: the
    API server's choice (minutes)."""

    @field_validator("watch_namespaces", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(n.strip() for n in value.split(",") if n.strip())
        return value

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> OperatorSettings:
        """Settings from `AGENTPOOL_*` variables; unset or empty ones keep their default."""
        names = {
            "agent_image": "AGENTPOOL_AGENT_IMAGE",
            "default_redis_url": "AGENTPOOL_DEFAULT_REDIS_URL",
            "watch_namespaces": "AGENTPOOL_WATCH_NAMESPACES",
            "operator_namespace": "AGENTPOOL_OPERATOR_NAMESPACE",
            "pod_name": "AGENTPOOL_POD_NAME",
            "leader_elect": "AGENTPOOL_LEADER_ELECT",
            "lease_duration_seconds": "AGENTPOOL_LEASE_DURATION_SECONDS",
            "lease_renew_deadline_seconds": "AGENTPOOL_LEASE_RENEW_DEADLINE_SECONDS",
            "lease_retry_seconds": "AGENTPOOL_LEASE_RETRY_SECONDS",
            "health_port": "AGENTPOOL_HEALTH_PORT",
            "metrics_port": "AGENTPOOL_METRICS_PORT",
            "workers": "AGENTPOOL_WORKERS",
            "metrics_api_port": "AGENTPOOL_METRICS_API_PORT",
            "metrics_api_service": "AGENTPOOL_METRICS_API_SERVICE",
            "metrics_api_service_port": "AGENTPOOL_METRICS_API_SERVICE_PORT",
            "pod_ip": "AGENTPOOL_POD_IP",
            "metrics_api_owner": "AGENTPOOL_METRICS_API_OWNER",
            "agent_port": "AGENTPOOL_AGENT_PORT",
            "activator_port": "AGENTPOOL_ACTIVATOR_PORT",
            "activator_address": "AGENTPOOL_ACTIVATOR_ADDRESS",
            "activator_wait_seconds": "AGENTPOOL_ACTIVATOR_WAIT_SECONDS",
            "activator_max_held": "AGENTPOOL_ACTIVATOR_MAX_HELD",
            "activator_max_body_bytes": "AGENTPOOL_ACTIVATOR_MAX_BODY_BYTES",
            "activator_pod_proxy": "AGENTPOOL_ACTIVATOR_POD_PROXY",
            "watch_timeout_seconds": "AGENTPOOL_WATCH_TIMEOUT_SECONDS",
            "resync_seconds": "AGENTPOOL_RESYNC_SECONDS",
            "discovery_seconds": "AGENTPOOL_DISCOVERY_SECONDS",
            "token_reviewer_binding": "AGENTPOOL_TOKEN_REVIEWER_BINDING",
        }
        values = {field: env[var] for field, var in names.items() if env.get(var, "").strip()}
        return cls.model_validate(values)
