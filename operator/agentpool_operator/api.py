"""The Agentpool API: AgentPool and AgentTool (group agentpool.dev, version v1alpha1).

These pydantic models are the single source of truth. `crdgen` turns them into the CRDs
(structural OpenAPI v3 with defaults, enums, ranges and CEL rules), the Helm chart's copy
of the CRDs and docs/crd-reference.md. Field docstrings become the CRD's documentation,
so they are written for users.

Cross-field rules are declared once, as `Rule`s in a model's `cel_rules`: each carries a
CEL expression (enforced by the API server) and the equivalent Python check (enforced
when the model is validated), so the operator and the server refuse the same specs.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal, Self, TypeVar

import jsonschema
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    StringConstraints,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema as cs

GROUP = "agentpool.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

# Bounds on lists and strings keep every CEL rule inside the API server's cost budget.
MAX_LIST = 64
MAX_NAME = 253

DnsLabel = Annotated[
    str,
    StringConstraints(min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"),
]
DnsSubdomain = Annotated[
    str,
    StringConstraints(
        min_length=1,
        max_length=MAX_NAME,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
    ),
]
HttpUrl = Annotated[str, StringConstraints(max_length=2048, pattern=r"^https?://[^\s]+$")]
LabelValue = Annotated[str, StringConstraints(max_length=63)]
AnnotationValue = Annotated[str, StringConstraints(max_length=4096)]
EnvName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_NAME, pattern=r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"),
]
HeaderName = Annotated[
    str, StringConstraints(min_length=1, max_length=256, pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
]

_QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]"
    r"|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)


def _check_quantity(value: int | str) -> int | str:
    if isinstance(value, str) and not re.fullmatch(_QUANTITY_PATTERN, value):
        raise ValueError(f"{value!r} is not a Kubernetes quantity (e.g. 500m, 2, 512Mi)")
    return value


Quantity = Annotated[
    int | str,
    AfterValidator(_check_quantity),
    # The shape controller-gen emits for resource.Quantity: an int-or-string.
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": _QUANTITY_PATTERN,
            "x-kubernetes-int-or-string": True,
        }
    ),
]
"""A Kubernetes resource quantity: an integer or a string such as `500m` or `512Mi`."""


@dataclass(frozen=True)
class Rule:
    """One cross-field rule, enforced both by the API server (CEL) and by the model.

    `check` must accept exactly the objects `cel` accepts; the integration tests compare
    the two on generated specs.
    """

    cel: str
    message: str
    check: Callable[[Any], bool]
    field_path: str | None = None

    def to_crd(self) -> dict[str, str]:
        """The `x-kubernetes-validations` entry of this rule."""
        entry = {"rule": self.cel, "message": self.message}
        if self.field_path is not None:
            entry["fieldPath"] = self.field_path
        return entry


class ApiModel(BaseModel):
    """Base of every API type: camelCase on the wire, immutable, unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
        extra="forbid",
        use_attribute_docstrings=True,
    )

    cel_rules: ClassVar[tuple[Rule, ...]] = ()

    @model_validator(mode="after")
    def _check_cel_rules(self) -> Self:
        broken = [rule.message for rule in type(self).cel_rules if not rule.check(self)]
        if broken:
            raise ValueError("; ".join(broken))
        return self

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core: cs.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core)
        if cls.cel_rules:
            target = handler.resolve_ref_schema(schema)
            target["x-kubernetes-validations"] = [rule.to_crd() for rule in cls.cel_rules]
        return schema


def section(factory: Callable[[], BaseModel]) -> Any:
    """A sub-object that defaults to its own defaults, on the API server too.

    The server's default is the fully expanded object rather than `{}`, because the server
    checks a default against the CEL rules before nested defaults are applied.
    """
    expanded = factory().model_dump(mode="json", by_alias=True, exclude_none=True)
    return Field(default_factory=factory, json_schema_extra={"default": expanded})


def list_map(key: str, max_items: int = MAX_LIST) -> Any:
    """A list keyed by `key` (unique keys, merged by key under server-side apply)."""
    return Field(
        default_factory=list,
        max_length=max_items,
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": [key],
        },
    )


def _unique(items: list[Any], key: str) -> list[Any]:
    seen: set[object] = set()
    for item in items:
        value = getattr(item, key)
        if value in seen:
            raise ValueError(f"duplicate {key} {value!r}")
        seen.add(value)
    return items


_Item = TypeVar("_Item")

NameKeyed = Annotated[list[_Item], AfterValidator(lambda items: _unique(items, "name"))]
"""A list whose items' `name`s are unique (the server refuses duplicate list-map keys too)."""


# ---------------------------------------------------------------------------
# Shared references
# ---------------------------------------------------------------------------


class SecretKeyRef(ApiModel):
    """A key of a Secret in the same namespace. Secret values never appear in a spec."""

    name: DnsSubdomain
    """Name of the Secret."""
    key: Annotated[
        str, StringConstraints(min_length=1, max_length=MAX_NAME, pattern=r"^[-._a-zA-Z0-9]+$")
    ]
    """Key within the Secret."""


class ConfigMapKeyRef(ApiModel):
    """A key of a ConfigMap in the same namespace."""

    name: DnsSubdomain
    """Name of the ConfigMap."""
    key: Annotated[
        str, StringConstraints(min_length=1, max_length=MAX_NAME, pattern=r"^[-._a-zA-Z0-9]+$")
    ]
    """Key within the ConfigMap."""


class LabelSelectorRequirement(ApiModel):
    """One set-based requirement of a label selector, as in metav1.LabelSelector."""

    key: Annotated[str, StringConstraints(min_length=1, max_length=317)]
    """The label key the requirement applies to."""
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    """How the key's value relates to `values`."""
    values: list[LabelValue] = Field(default_factory=list, max_length=MAX_LIST)
    """The values; non-empty for In and NotIn, empty for Exists and DoesNotExist."""

    cel_rules = (
        Rule(
            # values has no server-side default: absent and empty are the same.
            cel="(self.operator in ['In', 'NotIn']) == (has(self.values) && size(self.values) > 0)",
            message="values must be non-empty for In and NotIn, and empty for Exists and "
            "DoesNotExist",
            field_path=".values",
            check=lambda s: (s.operator in ("In", "NotIn")) == (len(s.values) > 0),
        ),
    )


class LabelSelector(ApiModel):
    """A label selector, as in metav1.LabelSelector; the requirements are ANDed."""

    match_labels: dict[Annotated[str, StringConstraints(max_length=317)], LabelValue] = Field(
        default_factory=dict, max_length=MAX_LIST
    )
    """Labels that must all be present with these values."""
    match_expressions: list[LabelSelectorRequirement] = Field(
        default_factory=list, max_length=MAX_LIST
    )
    """Set-based requirements that must all hold."""


# ---------------------------------------------------------------------------
# Model (LLM endpoint)
# ---------------------------------------------------------------------------


class ModelSpec(ApiModel):
    """The language model: any OpenAI-compatible chat-completions endpoint."""

    base_url: HttpUrl
    """Base URL of the OpenAI-compatible API, e.g. `https://api.openai.com/v1`."""
    name: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    """Model name sent in each request, e.g. `gpt-4o-mini`."""
    api_key_secret_ref: SecretKeyRef | None = None
    """Secret key holding the API key, sent as a bearer token. Unset for endpoints without
    authentication."""
    timeout_seconds: float = Field(default=60.0, gt=0, le=600)
    """Timeout of one chat-completions request, in seconds."""
    temperature: float | None = Field(default=None, ge=0, le=2)
    """Sampling temperature; unset uses the endpoint's default."""
    top_p: float | None = Field(default=None, gt=0, le=1)
    """Nucleus sampling probability mass; unset uses the endpoint's default."""
    max_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    """Upper bound on tokens generated per completion; unset uses the endpoint's default."""


# ---------------------------------------------------------------------------
# Tools a pool may use
# ---------------------------------------------------------------------------


class ToolRef(ApiModel):
    """A reference to an AgentTool in the pool's namespace."""

    name: DnsSubdomain
    """Name of the AgentTool."""


class ToolSelection(ApiModel):
    """Which AgentTools the pool's agents may call: those named plus those selected."""

    refs: NameKeyed[ToolRef] = list_map("name")
    """AgentTools by name."""
    selector: LabelSelector | None = None
    """AgentTools by label; unset selects none."""


# ---------------------------------------------------------------------------
# Memory
# ---------------------------------------------------------------------------


class RedisConnection(ApiModel):
    """How to reach Redis: a URL without credentials, or a Secret key holding the URL."""

    url: (
        Annotated[str, StringConstraints(max_length=2048, pattern=r"^rediss?://[^\s]+$")] | None
    ) = None
    """Redis URL such as `redis://redis.agentpool.svc:6379/0`. It must not contain a
    password: put URLs with credentials in a Secret and use `urlSecretRef`."""
    url_secret_ref: SecretKeyRef | None = None
    """Secret key holding the full Redis URL (credentials included)."""

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
    """Short-term memory: the recent turns of a conversation kept in the prompt."""

    capacity: int = Field(default=20, ge=1, le=1000)
    """Number of recent messages kept per conversation."""


class LongTermMemorySpec(ApiModel):
    """Facts promoted from conversations and kept across them."""

    enabled: bool = True
    """Whether facts are promoted to long-term memory."""
    ttl_seconds: int = Field(default=2_592_000, ge=60, le=31_536_000)
    """How long a long-term fact is kept, in seconds (default 30 days)."""
    importance_threshold: float = Field(default=0.5, ge=0, le=1)
    """Minimum importance (0 to 1) for a fact to be promoted to long-term memory."""


class EpisodicMemorySpec(ApiModel):
    """Past episodes (task, outcome) recalled by similarity."""

    enabled: bool = False
    """Whether episodes are recorded and recalled."""
    embedder: Literal["Hashing", "Endpoint"] = "Hashing"
    """How episodes are embedded: `Hashing` is a local feature-hashing embedder (no network,
    lower recall); `Endpoint` calls the embeddings API of the model's endpoint."""
    embedding_model: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = None
    """Embeddings model name; required when `embedder` is `Endpoint`."""
    dimensions: int = Field(default=256, ge=8, le=4096)
    """Embedding dimensions."""
    recall_limit: int = Field(default=3, ge=1, le=50)
    """Number of similar episodes recalled into the prompt."""

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
    """Where conversations, memories, episodes and tasks live. Every replica shares it, so
    any replica can serve any conversation."""
    working: WorkingMemorySpec = section(WorkingMemorySpec)
    """Working (short-term) memory."""
    long_term: LongTermMemorySpec = section(LongTermMemorySpec)
    """Long-term memory."""
    episodic: EpisodicMemorySpec = section(EpisodicMemorySpec)
    """Episodic memory."""


# ---------------------------------------------------------------------------
# Resilience and cache
# ---------------------------------------------------------------------------


class CircuitBreakerSpec(ApiModel):
    """A circuit breaker, with Resilience4j's names and semantics."""

    enabled: bool = True
    """Whether calls go through the circuit breaker."""
    failure_rate_threshold: int = Field(default=50, ge=1, le=100)
    """Failure rate, in percent, at or above which the circuit opens."""
    slow_call_rate_threshold: int = Field(default=100, ge=1, le=100)
    """Rate of slow calls, in percent, at or above which the circuit opens."""
    slow_call_duration_threshold_seconds: float = Field(default=30.0, gt=0, le=3600)
    """A call slower than this, in seconds, counts as slow."""
    sliding_window_type: Literal["CountBased", "TimeBased"] = "CountBased"
    """Whether the window holds the last N calls or the calls of the last N seconds."""
    sliding_window_size: int = Field(default=100, ge=1, le=10_000)
    """Window size: a number of calls (CountBased) or of seconds (TimeBased)."""
    minimum_number_of_calls: int = Field(default=10, ge=1, le=10_000)
    """Calls needed in the window before the failure rate is computed."""
    wait_duration_in_open_state_seconds: float = Field(default=30.0, gt=0, le=3600)
    """Time the circuit stays open before it lets trial calls through (half-open)."""
    permitted_number_of_calls_in_half_open_state: int = Field(default=3, ge=1, le=100)
    """Trial calls allowed while half-open; their outcome closes or re-opens the circuit."""

    cel_rules = (
        Rule(
            cel="self.slidingWindowType != 'CountBased' "
            "|| self.minimumNumberOfCalls <= self.slidingWindowSize",
            message="minimumNumberOfCalls must not exceed slidingWindowSize when "
            "slidingWindowType is CountBased",
            field_path=".minimumNumberOfCalls",
            check=lambda s: (
                s.sliding_window_type != "CountBased"
                or s.minimum_number_of_calls <= s.sliding_window_size
            ),
        ),
    )


class RetrySpec(ApiModel):
    """Retries with exponential backoff and jitter."""

    max_attempts: int = Field(default=3, ge=1, le=20)
    """Attempts in total, the first call included (1 disables retries)."""
    initial_backoff_seconds: float = Field(default=0.5, ge=0, le=600)
    """Wait before the first retry, in seconds."""
    max_backoff_seconds: float = Field(default=10.0, ge=0, le=600)
    """Upper bound of the wait between two attempts, in seconds."""
    backoff_multiplier: float = Field(default=2.0, ge=1, le=10)
    """Factor applied to the wait after each attempt."""
    jitter: bool = True
    """Whether waits are randomised (full jitter) to spread retries of many clients."""

    cel_rules = (
        Rule(
            cel="self.initialBackoffSeconds <= self.maxBackoffSeconds",
            message="initialBackoffSeconds must not exceed maxBackoffSeconds",
            field_path=".initialBackoffSeconds",
            check=lambda s: s.initial_backoff_seconds <= s.max_backoff_seconds,
        ),
    )


class ResilienceSpec(ApiModel):
    """Defaults for how tool calls survive failures; an AgentTool may override them."""

    circuit_breaker: CircuitBreakerSpec = section(CircuitBreakerSpec)
    """Circuit breaker per tool."""
    retry: RetrySpec = section(RetrySpec)
    """Retries of a failed call."""
    timeout_seconds: float = Field(default=30.0, gt=0, le=3600)
    """Timeout of one tool call, in seconds, when the tool sets none."""


class ResilienceOverride(ApiModel):
    """Per-tool resilience: each section given replaces the pool's section of that name;
    sections left out are inherited from the pool."""

    circuit_breaker: CircuitBreakerSpec | None = None
    """Circuit breaker of this tool."""
    retry: RetrySpec | None = None
    """Retries of this tool."""


class CacheSpec(ApiModel):
    """A TTL + LRU cache of results, with concurrent identical calls collapsed into one."""

    enabled: bool = True
    """Whether results are cached."""
    max_entries: int = Field(default=1024, ge=1, le=1_000_000)
    """Entries kept per replica; the least recently used is evicted first."""
    ttl_seconds: int = Field(default=300, ge=1, le=86_400)
    """How long a result stays fresh, in seconds."""


# ---------------------------------------------------------------------------
# Scaling
# ---------------------------------------------------------------------------


class ScaleUpRules(ApiModel):
    """How fast the pool grows (like HPA `behavior.scaleUp`)."""

    stabilization_window_seconds: int = Field(default=0, ge=0, le=3600)
    """The lowest recommendation of this window is used, so short spikes do not scale up."""
    max_replicas_per_step: int | None = Field(default=None, ge=1, le=1000)
    """At most this many replicas added per decision; unset means no limit."""


class ScaleDownRules(ApiModel):
    """How fast the pool shrinks (like HPA `behavior.scaleDown`)."""

    stabilization_window_seconds: int = Field(default=300, ge=0, le=3600)
    """The highest recommendation of this window is used, so short dips do not scale
    down."""
    max_replicas_per_step: int | None = Field(default=None, ge=1, le=1000)
    """At most this many replicas removed per decision; unset means no limit."""


class ScalingBehavior(ApiModel):
    """Scale-up and scale-down rules, as in HPA `behavior`."""

    scale_up: ScaleUpRules = section(ScaleUpRules)
    """Rules for adding replicas."""
    scale_down: ScaleDownRules = section(ScaleDownRules)
    """Rules for removing replicas."""


class ScalingSpec(ApiModel):
    """How the number of replicas follows the load."""

    mode: Literal["operator", "hpa", "none"] = "operator"
    """`operator`: the operator's autoscaler samples each pod's load and scales;
    `hpa`: an autoscaling/v2 HorizontalPodAutoscaler is created; `none`: `replicas` is
    used as is."""
    min_replicas: int = Field(default=1, ge=0, le=1000)
    """Fewest replicas the autoscaler keeps (0 allows scale to zero with mode operator)."""
    max_replicas: int = Field(default=10, ge=1, le=1000)
    """Most replicas the autoscaler creates."""
    metric: Literal["ActiveRequests", "TaskQueueDepth"] = "ActiveRequests"
    """The demand signal: in-flight requests, or in-flight requests plus tasks waiting in
    the task queue."""
    target_load_percent: int = Field(default=70, ge=1, le=100)
    """Scale up when load (demand / (ready replicas x concurrencyPerReplica)) is above
    this percentage."""
    scale_down_load_percent: int = Field(default=30, ge=0, le=99)
    """Scale down when load is below this percentage; must be below targetLoadPercent so
    the pool does not flap."""
    cooldown_period_seconds: int = Field(default=60, ge=0, le=86_400)
    """Minimum time between two scaling actions, in seconds (like KEDA's cooldownPeriod)."""
    behavior: ScalingBehavior = section(ScalingBehavior)
    """Stabilization windows and step limits."""

    cel_rules = (
        Rule(
            cel="self.minReplicas <= self.maxReplicas",
            message="minReplicas must not exceed maxReplicas",
            field_path=".minReplicas",
            check=lambda s: s.min_replicas <= s.max_replicas,
        ),
        Rule(
            cel="self.scaleDownLoadPercent < self.targetLoadPercent",
            message="scaleDownLoadPercent must be below targetLoadPercent",
            field_path=".scaleDownLoadPercent",
            check=lambda s: s.scale_down_load_percent < s.target_load_percent,
        ),
        Rule(
            cel="self.mode != 'hpa' || self.minReplicas >= 1",
            message="minReplicas must be at least 1 when mode is hpa",
            field_path=".minReplicas",
            check=lambda s: s.mode != "hpa" or s.min_replicas >= 1,
        ),
    )


# ---------------------------------------------------------------------------
# Pod template override
# ---------------------------------------------------------------------------


class EnvVarSource(ApiModel):
    """Where an environment variable's value comes from."""

    secret_key_ref: SecretKeyRef | None = None
    """A key of a Secret."""
    config_map_key_ref: ConfigMapKeyRef | None = None
    """A key of a ConfigMap."""

    cel_rules = (
        Rule(
            cel="has(self.secretKeyRef) != has(self.configMapKeyRef)",
            message="exactly one of secretKeyRef or configMapKeyRef must be set",
            check=lambda s: (s.secret_key_ref is None) != (s.config_map_key_ref is None),
        ),
    )


class EnvVar(ApiModel):
    """An environment variable of the agent container."""

    name: EnvName
    """Variable name."""
    value: Annotated[str, StringConstraints(max_length=32_768)] | None = None
    """Literal value."""
    value_from: EnvVarSource | None = None
    """Value read from a Secret or ConfigMap key."""

    cel_rules = (
        Rule(
            cel="!(has(self.value) && has(self.valueFrom))",
            message="value and valueFrom are mutually exclusive",
            field_path=".valueFrom",
            check=lambda s: s.value is None or s.value_from is None,
        ),
    )


class Toleration(ApiModel):
    """A toleration of the agent pods, as in core/v1 Toleration."""

    key: Annotated[str, StringConstraints(max_length=317)] | None = None
    """Taint key; unset with operator Exists tolerates every taint."""
    operator: Literal["Exists", "Equal"] = "Equal"
    """`Equal` matches key and value; `Exists` matches any value of the key."""
    value: LabelValue | None = None
    """Taint value, for operator Equal."""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    """Taint effect matched; unset matches every effect."""
    toleration_seconds: int | None = Field(default=None, ge=0)
    """For NoExecute: how long the pod stays bound after the taint appears."""

    cel_rules = (
        Rule(
            cel="self.operator != 'Exists' || !has(self.value)",
            message="value must be empty when operator is Exists",
            field_path=".value",
            check=lambda s: s.operator != "Exists" or s.value is None,
        ),
        Rule(
            cel="!has(self.tolerationSeconds) || (has(self.effect) && self.effect == 'NoExecute')",
            message="tolerationSeconds is only allowed with effect NoExecute",
            field_path=".tolerationSeconds",
            check=lambda s: s.toleration_seconds is None or s.effect == "NoExecute",
        ),
    )


class ResourceRequirements(ApiModel):
    """Compute resources of the agent container, as in core/v1 ResourceRequirements."""

    requests: dict[Annotated[str, StringConstraints(max_length=253)], Quantity] = Field(
        default_factory=dict, max_length=16
    )
    """Resources reserved for the container, e.g. `{cpu: 250m, memory: 512Mi}`."""
    limits: dict[Annotated[str, StringConstraints(max_length=253)], Quantity] = Field(
        default_factory=dict, max_length=16
    )
    """Most the container may use."""


class PodTemplateOverride(ApiModel):
    """Changes to the agent pods the operator renders; everything unset keeps the
    operator's choice."""

    image: Annotated[str, StringConstraints(min_length=1, max_length=1024)] | None = None
    """Agent runtime image; unset uses the image the operator was installed with."""
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None
    """Image pull policy of the agent container."""
    resources: ResourceRequirements | None = None
    """Compute resources of the agent container."""
    env: NameKeyed[EnvVar] = list_map("name")
    """Extra environment variables of the agent container."""
    node_selector: dict[Annotated[str, StringConstraints(max_length=317)], LabelValue] = Field(
        default_factory=dict, max_length=MAX_LIST
    )
    """Node labels the agent pods must be scheduled on."""
    tolerations: list[Toleration] = Field(default_factory=list, max_length=MAX_LIST)
    """Tolerations of the agent pods."""
    annotations: dict[Annotated[str, StringConstraints(max_length=317)], AnnotationValue] = Field(
        default_factory=dict, max_length=MAX_LIST
    )
    """Annotations added to the agent pods."""
    service_account_name: DnsSubdomain | None = None
    """Service account of the agent pods; unset uses the namespace's default."""


# ---------------------------------------------------------------------------
# AgentPool
# ---------------------------------------------------------------------------


class AgentPoolSpec(ApiModel):
    """The desired state of an AgentPool: one pool of identical agents for one business
    domain."""

    domain: DnsLabel
    """The business domain the agents serve, e.g. `customer-support`."""
    instructions: Annotated[str, StringConstraints(min_length=1, max_length=32_768)]
    """The system prompt: who the agents are, what they may do and how they answer."""
    model: ModelSpec
    """The language model the agents use."""
    tools: ToolSelection = section(ToolSelection)
    """The AgentTools the agents may call."""
    memory: MemorySpec = section(MemorySpec)
    """Working, long-term and episodic memory."""
    resilience: ResilienceSpec = section(ResilienceSpec)
    """Circuit breaker, retry and timeout defaults of tool calls."""
    cache: CacheSpec = section(CacheSpec)
    """Default cache of tool results."""
    concurrency_per_replica: int = Field(default=8, ge=1, le=1000)
    """Requests one replica serves at once; more wait. The denominator of load."""
    replicas: int = Field(default=1, ge=0, le=1000)
    """Number of agent pods. With scaling mode `none` it is used as is; otherwise the
    autoscaler starts from it. `kubectl scale` and an HPA that targets the pool set it
    through the scale subresource."""
    scaling: ScalingSpec = section(ScalingSpec)
    """Autoscaling."""
    template: PodTemplateOverride = section(PodTemplateOverride)
    """Changes to the rendered agent pods."""


class Condition(ApiModel):
    """A condition, in the standard metav1.Condition shape."""

    type: Annotated[
        str,
        StringConstraints(
            min_length=1,
            max_length=316,
            pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
            r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
        ),
    ]
    """Condition type, e.g. Ready."""
    status: Literal["True", "False", "Unknown"]
    """Whether the condition holds."""
    reason: Annotated[
        str,
        StringConstraints(
            min_length=1, max_length=1024, pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"
        ),
    ]
    """A CamelCase word saying why, for machines."""
    message: Annotated[str, StringConstraints(max_length=32_768)] = ""
    """A sentence saying why, for people."""
    last_transition_time: datetime
    """When the status last changed."""
    observed_generation: int | None = Field(default=None, ge=0)
    """The .metadata.generation the condition was computed from."""


ToolImplementation = Literal["Http", "Command", "Mcp", "Agent"]
PoolConditionType = Literal["Ready", "Progressing", "Degraded", "ScalingActive"]
ToolConditionType = Literal["Valid"]


class ResolvedTool(ApiModel):
    """An AgentTool the pool resolved and gave its agents."""

    name: DnsSubdomain
    """Name of the AgentTool."""
    implementation: ToolImplementation
    """How the tool is implemented."""


class AgentPoolStatus(ApiModel):
    """The observed state of an AgentPool, written by the operator."""

    observed_generation: int | None = Field(default=None, ge=0)
    """The .metadata.generation this status describes."""
    replicas: int = Field(default=0, ge=0)
    """Agent pods that exist."""
    ready_replicas: int = Field(default=0, ge=0)
    """Agent pods that are ready."""
    desired_replicas: int = Field(default=0, ge=0)
    """Replicas the autoscaler (or `replicas`) currently asks for."""
    load_percent: int | None = Field(default=None, ge=0)
    """Current load: demand / (ready replicas x concurrencyPerReplica), in percent."""
    last_scale_time: datetime | None = None
    """When the pool was last scaled."""
    last_scale_reason: Annotated[str, StringConstraints(max_length=1024)] | None = None
    """Why the pool was last scaled."""
    tools: list[ResolvedTool] = list_map("name", max_items=256)
    """The AgentTools resolved from spec.tools."""
    selector: Annotated[str, StringConstraints(max_length=4096)] | None = None
    """Label selector of the agent pods, in string form (used by the scale subresource)."""
    conditions: list[Condition] = list_map("type", max_items=16)
    """Ready, Progressing, Degraded and ScalingActive."""


# ---------------------------------------------------------------------------
# AgentTool
# ---------------------------------------------------------------------------


class HttpHeader(ApiModel):
    """An HTTP header sent with each call: a literal value or a Secret key."""

    name: HeaderName
    """Header name."""
    value: Annotated[str, StringConstraints(max_length=8192)] | None = None
    """Literal value (never a credential: use secretKeyRef)."""
    secret_key_ref: SecretKeyRef | None = None
    """Secret key holding the value."""

    cel_rules = (
        Rule(
            cel="has(self.value) != has(self.secretKeyRef)",
            message="exactly one of value or secretKeyRef must be set",
            check=lambda s: (s.value is None) != (s.secret_key_ref is None),
        ),
        Rule(
            cel="self.name.lowerAscii() != 'authorization' || has(self.secretKeyRef)",
            message="the Authorization header must come from a secretKeyRef",
            field_path=".value",
            check=lambda s: s.name.lower() != "authorization" or s.secret_key_ref is not None,
        ),
    )


class HttpImplementation(ApiModel):
    """The tool is an HTTP endpoint; arguments are sent as a JSON body (or as the query
    string for GET and DELETE)."""

    url: HttpUrl
    """Endpoint URL. `{name}` placeholders are filled from the arguments, URL-encoded."""
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    """HTTP method."""
    headers: NameKeyed[HttpHeader] = list_map("name", max_items=32)
    """Headers sent with each call."""
    timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    """Timeout of one call, in seconds."""


class CommandImplementation(ApiModel):
    """The tool runs a program, without a shell, in the agent pod's sandbox."""

    argv: list[Annotated[str, StringConstraints(min_length=1, max_length=4096)]] = Field(
        min_length=1, max_length=MAX_LIST
    )
    """Program and arguments. `{name}` placeholders in the arguments are replaced by the
    call's argument values, each as a single argv entry (no shell, no word splitting).
    The program (argv[0]) is literal."""
    allowed_binaries: list[Annotated[str, StringConstraints(min_length=1, max_length=4096)]] = (
        Field(min_length=1, max_length=32)
    )
    """Programs this tool may run; argv[0] must be one of them."""
    working_dir: Annotated[str, StringConstraints(max_length=4096, pattern=r"^/")] | None = None
    """Working directory (absolute); unset uses a fresh temporary directory."""
    timeout_seconds: float = Field(default=30.0, gt=0, le=3600)
    """The program is killed after this many seconds."""
    max_output_bytes: int = Field(default=65_536, ge=1, le=16_777_216)
    """Output beyond this many bytes is cut off."""

    cel_rules = (
        Rule(
            cel="self.argv[0] in self.allowedBinaries",
            message="argv[0] must be one of allowedBinaries",
            field_path=".argv",
            check=lambda s: s.argv[0] in s.allowed_binaries,
        ),
        Rule(
            cel="!self.argv[0].contains('{')",
            message="argv[0] must be a literal program, not a placeholder",
            field_path=".argv",
            check=lambda s: "{" not in s.argv[0],
        ),
    )


class McpImplementation(ApiModel):
    """The tool is a tool of a remote MCP server."""

    url: HttpUrl
    """URL of the MCP server's endpoint."""
    tool_name: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    """Name of the tool on that server."""
    transport: Literal["StreamableHTTP", "SSE"] = "StreamableHTTP"
    """MCP transport."""
    headers: NameKeyed[HttpHeader] = list_map("name", max_items=32)
    """Headers sent with each request, e.g. an Authorization header from a Secret."""
    timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    """Timeout of one call, in seconds."""


class AgentImplementation(ApiModel):
    """The tool is another AgentPool: the calling agent delegates a task to one of its
    agents (multi-agent collaboration)."""

    pool_name: DnsLabel
    """Name of the AgentPool, in the same namespace, that serves the calls."""
    timeout_seconds: float = Field(default=120.0, gt=0, le=3600)
    """Timeout of one delegated task, in seconds."""


class ToolHints(ApiModel):
    """Behaviour hints, as in MCP tool annotations; agents and operators use them to
    decide what is safe to retry, cache or confirm."""

    read_only_hint: bool = False
    """The tool does not change anything."""
    destructive_hint: bool | None = None
    """The tool may destroy or overwrite data (only meaningful when not read-only); unset
    means true for tools that are not read-only, as in MCP."""
    idempotent_hint: bool = False
    """Calling the tool again with the same arguments has no further effect."""
    open_world_hint: bool | None = None
    """The tool interacts with an open world of external entities; unset means true."""

    cel_rules = (
        Rule(
            cel="!(self.readOnlyHint && has(self.destructiveHint) && self.destructiveHint)",
            message="a tool with readOnlyHint cannot have destructiveHint",
            field_path=".destructiveHint",
            check=lambda s: not (s.read_only_hint and s.destructive_hint is True),
        ),
    )


def _default_parameters() -> dict[str, Any]:
    return {"type": "object", "properties": {}}


class AgentToolSpec(ApiModel):
    """The desired state of an AgentTool: one tool an agent may call, with exactly one
    implementation (http, command, mcp or agent)."""

    description: Annotated[str, StringConstraints(min_length=1, max_length=4096)]
    """What the tool does and when to use it; the model reads this to choose tools."""
    parameters: dict[str, Any] = Field(
        default_factory=_default_parameters,
        json_schema_extra={
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": True,
            "default": _default_parameters(),
            # Only `type` is structural; the rest of the JSON Schema is kept as written.
            "properties": {
                "type": {
                    "type": "string",
                    "enum": ["object"],
                    "description": "Always `object`: a tool takes named arguments.",
                }
            },
            "required": ["type"],
        },
    )
    """The arguments, as a JSON Schema object with `type: object` (the shape of an MCP
    tool's `inputSchema` and of OpenAI function `parameters`)."""
    hints: ToolHints = section(ToolHints)
    """Behaviour hints."""
    http: HttpImplementation | None = None
    """Call an HTTP endpoint."""
    command: CommandImplementation | None = None
    """Run a program without a shell."""
    mcp: McpImplementation | None = None
    """Call a tool of a remote MCP server."""
    agent: AgentImplementation | None = None
    """Delegate to another AgentPool."""
    resilience: ResilienceOverride | None = None
    """Overrides of the pool's resilience settings for this tool."""
    cache: CacheSpec | None = None
    """Overrides the pool's cache for this tool; only read-only tools may be cached."""

    cel_rules = (
        Rule(
            cel="[has(self.http), has(self.command), has(self.mcp), has(self.agent)]"
            ".filter(x, x).size() == 1",
            message="exactly one of http, command, mcp or agent must be set",
            check=lambda s: sum(x is not None for x in (s.http, s.command, s.mcp, s.agent)) == 1,
        ),
        Rule(
            cel="!has(self.cache) || !self.cache.enabled || self.hints.readOnlyHint",
            message="cache can only be enabled for tools with readOnlyHint",
            field_path=".cache",
            check=lambda s: s.cache is None or not s.cache.enabled or s.hints.read_only_hint,
        ),
    )

    @field_validator("parameters")
    @classmethod
    def _parameters_is_json_schema(cls, value: dict[str, Any]) -> dict[str, Any]:
        if value.get("type") != "object":
            raise ValueError("parameters must be a JSON Schema with type: object")
        try:
            jsonschema.Draft202012Validator.check_schema(value)
        except jsonschema.SchemaError as exc:
            raise ValueError(f"parameters is not a valid JSON Schema: {exc.message}") from exc
        return value

    @property
    def implementation(self) -> ToolImplementation:
        """Which implementation is set."""
        if self.http is not None:
            return "Http"
        if self.command is not None:
            return "Command"
        if self.mcp is not None:
            return "Mcp"
        return "Agent"


class AgentToolStatus(ApiModel):
    """The observed state of an AgentTool, written by the operator."""

    observed_generation: int | None = Field(default=None, ge=0)
    """The .metadata.generation this status describes."""
    implementation: ToolImplementation | None = None
    """How the tool is implemented."""
    used_by: list[DnsSubdomain] = Field(default_factory=list, max_length=256)
    """AgentPools that currently use the tool."""
    conditions: list[Condition] = list_map("type", max_items=16)
    """Valid (with the reason when it is not)."""


# ---------------------------------------------------------------------------
# The resources
# ---------------------------------------------------------------------------


class ObjectMeta(BaseModel):
    """The part of metav1.ObjectMeta the operator reads; other fields are kept."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")

    name: str
    namespace: str | None = None
    uid: str | None = None
    generation: int | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class AgentPool(ApiModel):
    """A pool of identical, autoscaled AI agents for one business domain."""

    model_config = ConfigDict(extra="ignore")

    api_version: Literal["agentpool.dev/v1alpha1"] = "agentpool.dev/v1alpha1"
    kind: Literal["AgentPool"] = "AgentPool"
    metadata: ObjectMeta
    spec: AgentPoolSpec
    status: AgentPoolStatus | None = None


class AgentTool(ApiModel):
    """One tool an agent may call."""

    model_config = ConfigDict(extra="ignore")

    api_version: Literal["agentpool.dev/v1alpha1"] = "agentpool.dev/v1alpha1"
    kind: Literal["AgentTool"] = "AgentTool"
    metadata: ObjectMeta
    spec: AgentToolSpec
    status: AgentToolStatus | None = None
