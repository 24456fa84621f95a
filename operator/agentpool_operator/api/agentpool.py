"""AgentPool: one pool of identical, autoscaled agents for one business domain."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, ClassVar, Literal

from pydantic import Field, StringConstraints

from agentpool_operator.api.common import (
    NON_EMPTY_SELECTOR_CEL,
    CacheSpec,
    Condition,
    ConfigMapKeyRef,
    HeaderSpec,
    KubeResource,
    LabelSelector,
    ResilienceSpec,
    SecretKeyRef,
)
from agentpool_operator.api.podtemplate import PodTemplate
from agentpool_operator.api.schema import (
    DNS1035_LABEL,
    MAX_LIST,
    ApiModel,
    DnsLabel,
    DnsSubdomain,
    HttpUrl,
    IntOrPercent,
    NameKeyed,
    NameRule,
    Ratio,
    Rule,
    Temperature,
    list_map,
    section,
)

MAX_POOL_NAME = 52
"""Longest pool name: the pool's Service is named after it (a DNS-1035 label of 63 or
fewer) and other children add a suffix of up to 11 characters."""

PoolName = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_POOL_NAME, pattern=DNS1035_LABEL)
]
"""What a pool may be called: a DNS-1035 label of MAX_POOL_NAME or fewer characters."""

# ---------------------------------------------------------------------------- model


class CaBundleRef(ApiModel):
    """A PEM bundle of the CAs that sign the model endpoint's certificate."""

    config_map_key_ref: ConfigMapKeyRef | None = None
    """A key of a ConfigMap. Defaults to none."""
    secret_key_ref: SecretKeyRef | None = None
    """A key of a Secret. Defaults to none."""

    cel_rules = (
        Rule(
            cel="has(self.configMapKeyRef) != has(self.secretKeyRef)",
            message="exactly one of configMapKeyRef or secretKeyRef must be set",
            check=lambda s: (s.config_map_key_ref is None) != (s.secret_key_ref is None),
        ),
    )


ModelName = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=r"^\S+$")]


class FallbackModelSpec(ApiModel):
    """Another model, tried when the ones before it fail (their circuit breaker is open)."""

    name: ModelName
    """Model name sent in each request."""
    base_url: HttpUrl | None = None
    """Base URL of its OpenAI-compatible API. Defaults to the primary model's endpoint,
    API key, headers and CA bundle."""
    api_key_secret_ref: SecretKeyRef | None = None
    """Secret key holding its API key. Defaults to no key when baseUrl is set, else the
    primary model's key."""


class ReasoningSpec(ApiModel):
    """Reasoning parameters, for models that reason before answering."""

    effort: Literal["Low", "Medium", "High"] = "Medium"
    """How much the model reasons (sent as reasoning_effort)."""


class ModelSpec(ApiModel):
    """The language model: any OpenAI-compatible chat-completions endpoint."""

    base_url: HttpUrl
    """Base URL of the OpenAI-compatible API, e.g. https://api.openai.com/v1."""
    name: ModelName
    """Model name sent in each request, e.g. gpt-4o-mini."""
    api_key_secret_ref: SecretKeyRef | None = None
    """Secret key holding the API key, sent as a bearer token. Defaults to none, for
    endpoints without authentication."""
    headers: NameKeyed[HeaderSpec] = list_map("name", max_items=16)
    """Extra headers sent with each request. Defaults to none."""
    ca_bundle: CaBundleRef | None = None
    """CAs to trust for the endpoint's certificate, for private endpoints. Defaults to the
    image's CA certificates."""
    timeout_seconds: int = Field(default=60, ge=1, le=600)
    """Timeout of one chat-completions request, in seconds."""
    temperature: Temperature | None = None
    """Sampling temperature, a decimal string from 0 to 2 such as "0.2". Defaults to the
    endpoint's default."""
    top_p: Ratio | None = None
    """Nucleus sampling probability mass, a decimal string from 0 to 1. Defaults to the
    endpoint's default."""
    max_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    """Most tokens generated per completion. Defaults to the endpoint's default."""
    context_window_tokens: int = Field(default=128_000, ge=1024, le=10_000_000)
    """Tokens the model reads at most; older turns are summarised to stay under it."""
    reasoning: ReasoningSpec | None = None
    """Reasoning parameters. Defaults to none sent."""
    fallbacks: list[FallbackModelSpec] = Field(default_factory=list, max_length=4)
    """Other models, tried in order when the ones before are failing. Defaults to none:
    the agents answer that they are degraded."""


class InstructionsSource(ApiModel):
    """Where the instructions are, when they are not inline."""

    config_map_key_ref: ConfigMapKeyRef
    """A ConfigMap key holding the instructions. A change of the ConfigMap rolls the pods."""


class TurnLimitsSpec(ApiModel):
    """Bounds on one turn (one message and everything done to answer it); hitting one ends
    the turn with a clear reason instead of a hang."""

    max_model_calls: int = Field(default=8, ge=1, le=100)
    """Model calls one turn may make, tool rounds included."""
    max_tokens: int = Field(default=64_000, ge=1, le=10_000_000)
    """Prompt and completion tokens one turn may use."""
    timeout_seconds: int = Field(default=120, ge=1, le=86_400)
    """Wall time one turn may take, in seconds."""


# ---------------------------------------------------------------------------- tools


class ToolRef(ApiModel):
    """A reference to an AgentTool in the pool's namespace."""

    name: DnsSubdomain
    """Name of the AgentTool."""


class ToolSelection(ApiModel):
    """Which AgentTools the pool's agents may call: those named plus those selected."""

    refs: NameKeyed[ToolRef] = list_map("name")
    """AgentTools by name. Defaults to none."""
    selector: LabelSelector | None = None
    """AgentTools by label. Defaults to none selected; an empty selector is refused (it
    would select every tool of the namespace)."""

    cel_rules = (
        Rule(
            cel="!has(self.selector) || "
            + NON_EMPTY_SELECTOR_CEL.replace("self.", "self.selector."),
            message="selector must have matchLabels or matchExpressions: an empty selector "
            "would select every AgentTool of the namespace",
            field_path=".selector",
            check=lambda s: s.selector is None or not s.selector.is_empty,
        ),
    )


# ---------------------------------------------------------------------------- memory


class RedisConnection(ApiModel):
    """How to reach Redis: a URL without credentials, or a Secret key holding the URL."""

    url: (
        Annotated[str, StringConstraints(max_length=2048, pattern=r"^rediss?://[^\s]+$")] | None
    ) = None
    """Redis URL such as redis://redis.agentpool.svc:6379/0, without a password (put URLs
    with credentials in a Secret and use urlSecretRef). Defaults to none."""
    url_secret_ref: SecretKeyRef | None = None
    """Secret key holding the full Redis URL, credentials included. Defaults to none."""

    cel_rules = (
        Rule(
            cel="has(self.url) != has(self.urlSecretRef)",
            message="exactly one of url or urlSecretRef must be set",
            check=lambda s: (s.url is None) != (s.url_secret_ref is None),
        ),
        Rule(
            cel="!has(self.url) || !self.url.contains('@')",
            message="url must not contain credentials; use urlSecretRef for a URL with a password",
            field_path=".url",
            check=lambda s: s.url is None or "@" not in s.url,
        ),
    )


class WorkingMemorySpec(ApiModel):
    """Short-term memory, per conversation, on each replica. Needs no Redis."""

    capacity: int = Field(default=256, ge=1, le=100_000)
    """Entries kept per conversation; the least recently used goes first."""


class LongTermMemorySpec(ApiModel):
    """Facts kept across conversations, in Redis."""

    enabled: bool | None = None
    """Whether facts are kept in long-term memory. Defaults to true when the pool has
    Redis (memory.redis or the operator's default), false otherwise."""
    ttl_seconds: int = Field(default=2_592_000, ge=60, le=31_536_000)
    """How long a fact is kept, in seconds (30 days)."""
    importance_threshold: Ratio = "0.3"
    """Least importance, a decimal string from 0 to 1, for a fact to be kept long-term."""


class EpisodicMemorySpec(ApiModel):
    """Past episodes (task and outcome) recalled by meaning, in Redis."""

    enabled: bool = False
    """Whether episodes are recorded and recalled. Needs Redis."""
    embedder: Literal["Hashing", "Endpoint"] = "Hashing"
    """How episodes are embedded: Hashing is a local feature-hashing embedder (no network,
    lower recall); Endpoint calls the embeddings API of the model's endpoint."""
    embedding_model: ModelName | None = None
    """Embeddings model name; required when embedder is Endpoint. Defaults to none."""
    dimensions: int = Field(default=384, ge=8, le=4096)
    """Embedding dimensions."""
    recall_limit: int = Field(default=3, ge=1, le=50)
    """Similar episodes recalled into the prompt."""
    importance_threshold: Ratio = "0.7"
    """Least importance, a decimal string from 0 to 1, for a memory to become an episode."""

    cel_rules = (
        Rule(
            cel="self.embedder != 'Endpoint' || has(self.embeddingModel)",
            message="embeddingModel is required when embedder is Endpoint",
            field_path=".embeddingModel",
            check=lambda s: s.embedder != "Endpoint" or s.embedding_model is not None,
        ),
    )


class MemorySpec(ApiModel):
    """The memory hierarchy of the pool's agents."""

    redis: RedisConnection | None = None
    """Where conversations, memories, episodes and tasks live; every replica shares it, so
    any replica can serve any conversation. Defaults to the operator's default Redis, if
    it has one; without Redis the agents keep working memory and conversations on each
    replica only."""
    working: WorkingMemorySpec = section(WorkingMemorySpec)
    """Working (short-term) memory."""
    long_term: LongTermMemorySpec = section(LongTermMemorySpec)
    """Long-term memory."""
    episodic: EpisodicMemorySpec = section(EpisodicMemorySpec)
    """Episodic memory."""


# ---------------------------------------------------------------------------- scaling


class ScalingPolicy(ApiModel):
    """A limit on how much the pool changes within a period, as in HPA behavior."""

    type: Literal["Pods", "Percent"]
    """Pods: a number of replicas; Percent: a percentage of the current replicas."""
    value: int = Field(ge=1, le=10_000)
    """The number or percentage."""
    period_seconds: int = Field(ge=1, le=1800)
    """The period the limit applies to, in seconds."""


class ScalingRules(ApiModel):
    """Scaling rules of one direction, as in HPA behavior.scaleUp and scaleDown."""

    stabilization_window_seconds: int | None = Field(default=None, ge=0, le=3600)
    """Recommendations of this many past seconds are considered, and the most
    conservative wins, so that short spikes or dips do not move the pool. Defaults to 0
    for scaling up and to 120 for scaling down (in mode HPA, to the HPA's own defaults)."""
    select_policy: Literal["Max", "Min", "Disabled"] = "Max"
    """Which policy applies when several do: the one allowing the largest change (Max),
    the smallest (Min), or none: this direction is off (Disabled)."""
    policies: list[ScalingPolicy] = Field(default_factory=list, max_length=10)
    """Limits on change per period. Defaults to 100 percent or 4 pods per second for
    scaling up and 50 percent per 10 seconds for scaling down (in mode HPA, to the HPA's
    own defaults)."""


class ScalingBehavior(ApiModel):
    """Scale-up and scale-down rules, as in HPA behavior."""

    scale_up: ScalingRules | None = None
    """Rules for adding replicas. Defaults to the rules' defaults."""
    scale_down: ScalingRules | None = None
    """Rules for removing replicas. Defaults to the rules' defaults."""


class ScalingFallback(ApiModel):
    """What the autoscaler does when it cannot read the pool's load."""

    failure_threshold: int = Field(default=3, ge=1, le=1000)
    """Consecutive failed reads (one a second) before the fallback applies."""
    replicas: int | None = Field(default=None, ge=0, le=1000)
    """The size the pool goes to. Defaults to holding its current size."""


class OperatorScaling(ApiModel):
    """The operator's autoscaler: each replica publishes its load every second; the pool
    grows from a short window of samples and shrinks from a long one."""

    signal: Literal["ActiveTurns", "ActiveTurnsAndQueuedTasks"] = "ActiveTurnsAndQueuedTasks"
    """The demand: turns in progress, or turns in progress plus tasks waiting in the
    pool's task queue. Either way, requests a replica refused because every slot was
    taken count too (within the last few seconds). Only the second can wake a pool
    scaled to zero."""
    target_load_percent: int = Field(default=70, ge=1, le=100)
    """Load the autoscaler aims for: demand divided by (ready replicas times
    concurrencyPerReplica), in percent. Above it, the pool grows."""
    scale_down_load_percent: int = Field(default=40, ge=0, le=99)
    """Below this load the pool shrinks; between it and targetLoadPercent nothing changes
    (the hysteresis band). Must be below targetLoadPercent."""
    scale_up_window_seconds: int = Field(default=2, ge=1, le=600)
    """Seconds of samples that a scale-up decision reads."""
    scale_down_window_seconds: int = Field(default=60, ge=1, le=3600)
    """Seconds of samples that a scale-down decision reads."""
    cooldown_period_seconds: int = Field(default=300, ge=0, le=86_400)
    """With minReplicas 0: seconds without any demand before the pool scales to zero."""
    behavior: ScalingBehavior = section(ScalingBehavior)
    """Stabilization windows and step limits."""
    fallback: ScalingFallback | None = None
    """What to do when the load cannot be read. Defaults to holding the current size
    after 3 failed reads."""

    cel_rules = (
        Rule(
            cel="self.scaleDownLoadPercent < self.targetLoadPercent",
            message="scaleDownLoadPercent must be below targetLoadPercent",
            field_path=".scaleDownLoadPercent",
            check=lambda s: s.scale_down_load_percent < s.target_load_percent,
        ),
    )


class HPAScaling(ApiModel):
    """A HorizontalPodAutoscaler (autoscaling/v2) targets the pool."""

    metric: Literal["Load", "CPU", "Memory"] = "Load"
    """Load: the pool's load, served by the operator as a custom metric (no Prometheus
    needed); CPU or Memory: resource utilization (needs metrics-server)."""
    target_percent: int = Field(default=70, ge=1, le=1000)
    """The target: load in percent of capacity for Load, utilization of requests for CPU
    and Memory."""
    behavior: ScalingBehavior | None = None
    """Copied into the HPA as it is. Defaults to the HPA's own defaults."""


class ScalingSpec(ApiModel):
    """How the number of replicas follows the load."""

    mode: Literal["Operator", "HPA", "None"] = "Operator"
    """Operator: the operator's autoscaler; HPA: a HorizontalPodAutoscaler; None: replicas
    is set by hand (or by kubectl scale)."""
    min_replicas: int = Field(default=1, ge=0, le=1000)
    """Fewest replicas (0 lets mode Operator scale to zero)."""
    max_replicas: int = Field(default=10, ge=1, le=1000)
    """Most replicas."""
    operator: OperatorScaling | None = None
    """Settings of mode Operator. Defaults to the settings' defaults."""
    hpa: HPAScaling | None = None
    """Settings of mode HPA. Defaults to the settings' defaults."""

    cel_rules = (
        Rule(
            cel="self.minReplicas <= self.maxReplicas",
            message="minReplicas must not exceed maxReplicas",
            field_path=".minReplicas",
            check=lambda s: s.min_replicas <= s.max_replicas,
        ),
        Rule(
            cel="self.mode == 'Operator' || !has(self.operator)",
            message="operator is only allowed with mode Operator",
            field_path=".operator",
            check=lambda s: s.mode == "Operator" or s.operator is None,
        ),
        Rule(
            cel="self.mode == 'HPA' || !has(self.hpa)",
            message="hpa is only allowed with mode HPA",
            field_path=".hpa",
            check=lambda s: s.mode == "HPA" or s.hpa is None,
        ),
        Rule(
            cel="self.mode != 'HPA' || self.minReplicas >= 1",
            message="minReplicas must be at least 1 when mode is HPA",
            field_path=".minReplicas",
            check=lambda s: s.mode != "HPA" or s.min_replicas >= 1,
        ),
        Rule(
            cel="self.mode != 'Operator' || self.minReplicas >= 1 || !has(self.operator) "
            "|| self.operator.signal == 'ActiveTurnsAndQueuedTasks'",
            message="minReplicas 0 needs signal ActiveTurnsAndQueuedTasks: with no replica "
            "there are no active turns to wake the pool",
            field_path=".minReplicas",
            check=lambda s: (
                s.mode != "Operator"
                or s.min_replicas >= 1
                or s.operator is None
                or s.operator.signal == "ActiveTurnsAndQueuedTasks"
            ),
        ),
    )

    @property
    def operator_settings(self) -> OperatorScaling:
        """The Operator-mode settings in effect."""
        return self.operator if self.operator is not None else OperatorScaling()

    @property
    def hpa_settings(self) -> HPAScaling:
        """The HPA-mode settings in effect."""
        return self.hpa if self.hpa is not None else HPAScaling()


# ---------------------------------------------------------------------------- disruption, network


class DisruptionBudgetSpec(ApiModel):
    """The PodDisruptionBudget of the pool, made when it has more than one replica."""

    enabled: bool = True
    """Whether the operator makes one."""
    max_unavailable: IntOrPercent = 1
    """Pods that voluntary disruptions (node drains) may take down at once: a number or a
    percentage such as 25%."""


class NetworkPeer(ApiModel):
    """Pods allowed to call the pool, as in a NetworkPolicy peer."""

    pod_selector: LabelSelector | None = None
    """Pods, by label. Defaults to every pod of the selected namespaces."""
    namespace_selector: LabelSelector | None = None
    """Namespaces, by label. Defaults to the pool's namespace."""

    cel_rules = (
        Rule(
            cel="has(self.podSelector) || has(self.namespaceSelector)",
            message="set podSelector, namespaceSelector or both",
            check=lambda s: s.pod_selector is not None or s.namespace_selector is not None,
        ),
    )


class NetworkPolicySpec(ApiModel):
    """A NetworkPolicy that lets only the named callers reach the pool's pods (where the
    cluster enforces NetworkPolicy)."""

    enabled: bool = True
    """Whether the operator makes one."""
    allowed_callers: list[NetworkPeer] = Field(default_factory=list, max_length=MAX_LIST)
    """Who may call the pool's API. The operator's namespace is always allowed (it drains
    pods before removing them), and so are the pods of the pools of the namespace that use
    this pool as a tool. Defaults to every pod of the pool's namespace."""


# ---------------------------------------------------------------------------- access

TenantOrAny = Annotated[
    str,
    StringConstraints(
        min_length=1, max_length=128, pattern=r"^(\*|[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127})$"
    ),
]


class CallerServiceAccount(ApiModel):
    """A ServiceAccount whose pods may call the pool with a projected token, and the tenant
    it acts for."""

    namespace: DnsLabel | None = None
    """Namespace of the ServiceAccount. Defaults to the pool's namespace."""
    name: DnsSubdomain | None = None
    """Name of the ServiceAccount. Defaults to every ServiceAccount of the namespace."""
    tenant: TenantOrAny
    """The tenant its requests act for, or * for any tenant (a trusted gateway)."""


class AccessSpec(ApiModel):
    """Who may call the pool's API. The probes and metrics are always open; everything
    else needs a bearer token or a projected ServiceAccount token. Pools of the namespace
    that use this pool as a tool are allowed as themselves, for any tenant."""

    mode: Literal["Required", "Disabled"] = "Required"
    """Required, or Disabled: every caller may act for any tenant (only for a pool no one
    else can reach). Defaults to Required."""
    tokens_secret_ref: SecretKeyRef | None = None
    """A Secret key holding bearer tokens as YAML: tokens, a list of name, token (at least
    16 characters) and tenant (or * for any tenant). Updates reach the pods without a
    restart. Defaults to none."""
    service_accounts: list[CallerServiceAccount] = Field(default_factory=list, max_length=MAX_LIST)
    """ServiceAccounts allowed to call with a projected token whose audience is
    agentpool/NAMESPACE/POOL (checked by TokenReview; the operator lets the pool's
    ServiceAccount create TokenReviews through the chart's token-reviewer binding).
    Defaults to none."""


# ---------------------------------------------------------------------------- the pool


class AgentPoolSpec(ApiModel):
    """The desired state of an AgentPool: one pool of identical agents for one business
    domain."""

    domain: DnsLabel | None = None
    """The business domain the agents serve, e.g. customer-support; told to the model.
    Defaults to none."""
    instructions: Annotated[str, StringConstraints(min_length=1, max_length=32_768)] | None = None
    """The system prompt: who the agents are, what they may do and how they answer.
    Exactly one of instructions and instructionsFrom. Defaults to none."""
    instructions_from: InstructionsSource | None = None
    """The system prompt, from a ConfigMap key. Defaults to none."""
    model: ModelSpec
    """The language model the agents use."""
    tools: ToolSelection = section(ToolSelection)
    """The AgentTools the agents may call."""
    memory: MemorySpec = section(MemorySpec)
    """Working, long-term and episodic memory."""
    resilience: ResilienceSpec = section(ResilienceSpec)
    """Circuit breaker, retry, timeout, bulkhead and rate limit of tool calls; an
    AgentTool may override them field by field."""
    cache: CacheSpec = section(CacheSpec)
    """Cache of tool results."""
    concurrency_per_replica: int = Field(default=8, ge=1, le=1000)
    """Turns one replica runs at once; more wait. The denominator of load."""
    turn_limits: TurnLimitsSpec = section(TurnLimitsSpec)
    """Bounds on one turn."""
    replicas: int | None = Field(default=None, ge=0, le=1000)
    """Number of agent pods. In modes Operator and HPA the autoscaler writes it (through
    the scale subresource, as kubectl scale does); in mode None the user does. Defaults
    to none: minReplicas until the autoscaler writes it (1 in mode None)."""
    scaling: ScalingSpec = section(ScalingSpec)
    """Autoscaling."""
    pod_template: PodTemplate = section(PodTemplate)
    """Changes to the agent pods."""
    disruption_budget: DisruptionBudgetSpec = section(DisruptionBudgetSpec)
    """The pool's PodDisruptionBudget."""
    network_policy: NetworkPolicySpec = section(NetworkPolicySpec)
    """The pool's NetworkPolicy."""
    access: AccessSpec = section(AccessSpec)
    """Who may call the pool's API, and as which tenant."""

    cel_rules = (
        Rule(
            cel="has(self.instructions) != has(self.instructionsFrom)",
            message="exactly one of instructions or instructionsFrom must be set",
            field_path=".instructions",
            check=lambda s: (s.instructions is None) != (s.instructions_from is None),
        ),
        Rule(
            cel="!has(self.replicas) || self.scaling.mode == 'None' || "
            "(self.replicas >= self.scaling.minReplicas && "
            "self.replicas <= self.scaling.maxReplicas)",
            message="replicas must be within scaling.minReplicas and scaling.maxReplicas",
            field_path=".replicas",
            check=lambda s: (
                s.replicas is None
                or s.scaling.mode == "None"
                or s.scaling.min_replicas <= s.replicas <= s.scaling.max_replicas
            ),
        ),
    )


# ---------------------------------------------------------------------------- status

PoolConditionType = Literal[
    "Ready",
    "Progressing",
    "Degraded",
    "ToolsResolved",
    "ScalingActive",
    "ScalingLimited",
    "Paused",
    "Fallback",
]
ToolImplementation = Literal["HTTP", "Command", "MCP", "Agent"]


class ResolvedTool(ApiModel):
    """An AgentTool the pool resolved and gave its agents."""

    name: DnsSubdomain
    """Name of the AgentTool."""
    implementation: ToolImplementation
    """How the tool is implemented."""


class AgentPoolStatus(ApiModel):
    """The observed state of an AgentPool, written by the operator."""

    observed_generation: int | None = Field(default=None, ge=0)
    """The metadata.generation this status describes. Defaults to none."""
    replicas: int = Field(default=0, ge=0)
    """Agent pods that exist."""
    ready_replicas: int = Field(default=0, ge=0)
    """Agent pods that are ready."""
    updated_replicas: int = Field(default=0, ge=0)
    """Agent pods that run the current configuration."""
    desired_replicas: int = Field(default=0, ge=0)
    """Replicas the pool asks for (spec.replicas, or what stands in for it)."""
    selector: Annotated[str, StringConstraints(max_length=4096)] | None = None
    """Label selector of the agent pods, in string form, for the scale subresource.
    Defaults to none."""
    config_hash: Annotated[str, StringConstraints(max_length=128)] | None = None
    """Hash of the rendered runtime configuration the pods run. Defaults to none."""
    demand: int | None = Field(default=None, ge=0)
    """Turns in progress, plus requests refused for lack of a slot in the last few
    seconds, plus, with that signal, tasks waiting. Defaults to none when unknown."""
    load_percent: int | None = Field(default=None, ge=0)
    """demand divided by (ready replicas times concurrencyPerReplica), in percent.
    Defaults to none when no replica is ready."""
    last_scale_time: datetime | None = None
    """When the pool was last scaled. Defaults to none."""
    last_scale_reason: Annotated[str, StringConstraints(max_length=1024)] | None = None
    """Why the pool was last scaled. Defaults to none."""
    scale_up_blocked_until: datetime | None = None
    """The autoscaler does not add replicas before this time (a stabilization window or
    policy period). Defaults to none."""
    scale_down_blocked_until: datetime | None = None
    """The autoscaler does not remove replicas before this time. Defaults to none."""
    tools: list[ResolvedTool] = list_map("name", max_items=256)
    """The AgentTools resolved from spec.tools. Defaults to none."""
    conditions: list[Condition] = list_map("type", max_items=16)
    """Ready, Progressing, Degraded, ToolsResolved, ScalingActive, ScalingLimited, Paused
    and Fallback. Defaults to none."""


PAUSED_ANNOTATION = "agentpool.dev/paused"
"""Set to "true" on a pool to stop its autoscaler; the pool keeps its size."""
PAUSED_REPLICAS_ANNOTATION = "agentpool.dev/paused-replicas"
"""Set to a number on a pool to stop its autoscaler and pin the pool to that size."""


class AgentPool(KubeResource):
    """A pool of identical, autoscaled AI agents for one business domain."""

    kind: Literal["AgentPool"] = "AgentPool"
    spec: AgentPoolSpec
    status: AgentPoolStatus | None = None

    name_rule: ClassVar[NameRule] = NameRule(
        DNS1035_LABEL,
        MAX_POOL_NAME,
        "a DNS-1035 label (a lowercase letter, then lowercase letters, digits or '-'): "
        "the pool's Service and labels are named after it",
    )
