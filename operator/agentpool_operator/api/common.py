"""Types both kinds use: references, label selectors, headers, conditions, object metadata,
and the resilience and cache settings a pool sets and a tool may override."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic.alias_generators import to_camel

from agentpool_operator.api.schema import (
    API_VERSION,
    MAX_LIST,
    MAX_NAME,
    ApiModel,
    DnsSubdomain,
    HeaderName,
    LabelValue,
    Multiplier,
    NameRule,
    QualifiedName,
    Rule,
    section,
)

# ---------------------------------------------------------------------------- references

SecretKey = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_NAME, pattern=r"^[-._a-zA-Z0-9]+$")
]


class SecretKeyRef(ApiModel):
    """A key of a Secret in the same namespace. Secret values never appear in a spec."""

    name: DnsSubdomain
    """Name of the Secret."""
    key: SecretKey
    """Key within the Secret."""


class ConfigMapKeyRef(ApiModel):
    """A key of a ConfigMap in the same namespace."""

    name: DnsSubdomain
    """Name of the ConfigMap."""
    key: SecretKey
    """Key within the ConfigMap."""


class LocalObjectReference(ApiModel):
    """An object of the same namespace, by name."""

    name: DnsSubdomain
    """Name of the object."""


class LabelSelectorRequirement(ApiModel):
    """One set-based requirement of a label selector, as in metav1.LabelSelector."""

    key: QualifiedName
    """The label key the requirement applies to."""
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    """How the key's value relates to values."""
    values: list[LabelValue] = Field(default_factory=list, max_length=MAX_LIST)
    """The values; non-empty for In and NotIn, empty for Exists and DoesNotExist. Defaults
    to none."""

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

    match_labels: dict[QualifiedName, LabelValue] = Field(default_factory=dict, max_length=MAX_LIST)
    """Labels that must all be present with these values. Defaults to none."""
    match_expressions: list[LabelSelectorRequirement] = Field(
        default_factory=list, max_length=MAX_LIST
    )
    """Set-based requirements that must all hold. Defaults to none."""

    @property
    def is_empty(self) -> bool:
        """An empty selector selects everything."""
        return not self.match_labels and not self.match_expressions


NON_EMPTY_SELECTOR_CEL = (
    "(has(self.matchLabels) && size(self.matchLabels) > 0) || "
    "(has(self.matchExpressions) && size(self.matchExpressions) > 0)"
)
"""CEL that holds when a label selector (self) selects less than everything."""


class HeaderSpec(ApiModel):
    """An HTTP header sent with each request: a literal value or a Secret key."""

    name: HeaderName
    """Header name."""
    value: Annotated[str, StringConstraints(max_length=8192)] | None = None
    """Literal value (never a credential: use secretKeyRef). Defaults to none."""
    secret_key_ref: SecretKeyRef | None = None
    """Secret key holding the value. Defaults to none."""

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


# ---------------------------------------------------------------------------- resilience


class CircuitBreakerSpec(ApiModel):
    """A circuit breaker, with Resilience4j's names and semantics."""

    enabled: bool = True
    """Whether calls go through the circuit breaker."""
    failure_rate_threshold: int = Field(default=50, ge=1, le=100)
    """Failure rate, in percent, at or above which the circuit opens."""
    slow_call_rate_threshold: int = Field(default=100, ge=1, le=100)
    """Rate of slow calls, in percent, at or above which the circuit opens."""
    slow_call_duration_threshold_seconds: int = Field(default=30, ge=1, le=3600)
    """A call slower than this many seconds counts as slow."""
    sliding_window_type: Literal["CountBased", "TimeBased"] = "CountBased"
    """Whether the window holds the last N calls (CountBased) or the calls of the last N
    seconds (TimeBased)."""
    sliding_window_size: int = Field(default=100, ge=1, le=10_000)
    """Window size: a number of calls (CountBased) or of seconds (TimeBased)."""
    minimum_number_of_calls: int = Field(default=10, ge=1, le=10_000)
    """Calls needed in the window before the failure rate is computed. With CountBased,
    at most slidingWindowSize."""
    wait_duration_in_open_state_seconds: int = Field(default=30, ge=1, le=3600)
    """Seconds the circuit stays open before it lets trial calls through (half-open)."""
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
    """Retries with exponential backoff and jitter. Only read-only and idempotent tools
    are retried."""

    max_attempts: int = Field(default=3, ge=1, le=20)
    """Attempts in total, the first call included (1 disables retries)."""
    initial_backoff_milliseconds: int = Field(default=200, ge=0, le=600_000)
    """Wait before the first retry, in milliseconds."""
    max_backoff_milliseconds: int = Field(default=10_000, ge=0, le=600_000)
    """Upper bound of the wait between two attempts, in milliseconds. A wait computed
    above it is cut to it."""
    backoff_multiplier: Multiplier = "2"
    """Factor applied to the wait after each attempt, a decimal string from 1 to 10."""
    jitter: bool = True
    """Whether waits are randomised, so that many clients do not retry in step."""

    cel_rules = (
        Rule(
            cel="self.initialBackoffMilliseconds <= self.maxBackoffMilliseconds",
            message="initialBackoffMilliseconds must not exceed maxBackoffMilliseconds",
            field_path=".initialBackoffMilliseconds",
            check=lambda s: s.initial_backoff_milliseconds <= s.max_backoff_milliseconds,
        ),
    )


class BulkheadSpec(ApiModel):
    """A per-tool limit on calls in flight at once, on each replica."""

    max_concurrent_calls: int = Field(default=32, ge=1, le=10_000)
    """Calls of one tool running at once on one replica."""
    max_wait_milliseconds: int = Field(default=5_000, ge=0, le=600_000)
    """How long a call waits for a free slot before it is refused, in milliseconds."""


class RateLimitSpec(ApiModel):
    """A per-tool token bucket on each replica."""

    requests_per_second: int | None = Field(default=None, ge=1, le=100_000)
    """Sustained calls per second. Defaults to no limit."""
    burst: int = Field(default=10, ge=1, le=100_000)
    """Calls allowed at once above the sustained rate."""
    max_wait_milliseconds: int = Field(default=0, ge=0, le=600_000)
    """How long a call waits for a token before it is refused, in milliseconds."""


class ResilienceSpec(ApiModel):
    """How tool calls survive failures: the pool's defaults, which an AgentTool may
    override field by field."""

    circuit_breaker: CircuitBreakerSpec = section(CircuitBreakerSpec)
    """Circuit breaker per tool."""
    retry: RetrySpec = section(RetrySpec)
    """Retries of a failed call."""
    timeout_seconds: int = Field(default=30, ge=1, le=3600)
    """Timeout of one tool call, all attempts included, in seconds."""
    bulkhead: BulkheadSpec = section(BulkheadSpec)
    """Concurrency limit per tool."""
    rate_limit: RateLimitSpec = section(RateLimitSpec)
    """Rate limit per tool."""


class CacheSpec(ApiModel):
    """A TTL and LRU cache of tool results, with concurrent identical calls collapsed into
    one. Only read-only tools are cached."""

    enabled: bool = True
    """Whether results of read-only tools are cached."""
    max_entries: int = Field(default=1024, ge=1, le=1_000_000)
    """Entries kept per replica; the least recently used is evicted first."""
    ttl_seconds: int = Field(default=300, ge=1, le=86_400)
    """How long a result stays fresh, in seconds."""


# ---------------------------------------------------------------------------- status


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
    """The metadata.generation the condition was computed from. Defaults to none."""


class ObjectMeta(BaseModel):
    """The part of metav1.ObjectMeta the operator reads; other fields are kept."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")

    name: str
    namespace: str | None = None
    uid: str | None = None
    generation: int | None = None
    resource_version: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class KubeResource(ApiModel):
    """A whole object of one of our kinds, as the API server serves it."""

    model_config = ConfigDict(extra="ignore")

    name_rule: ClassVar[NameRule]

    api_version: Literal["agentpool.dev/v1alpha1"] = API_VERSION  # type: ignore[assignment]
    metadata: ObjectMeta

    @model_validator(mode="after")
    def _check_name(self) -> Self:
        problem = type(self).name_rule.problem(self.metadata.name)
        if problem is not None:
            raise ValueError(problem)
        return self
