"""The one bridge from the AgentPool API to the runtime's config: the only code that knows
both schemas.

`runtime_config(pool, tools, settings)` is pure: the pool, the AgentTools it resolved and
the operator's settings in; the `RuntimeConfig` every replica runs, the environment
variables to fill from Secrets and the files to mount out. Every field of the document is
written, so the defaults that matter are the CRD's; the runtime's own defaults only serve
a runtime started by hand.

Secrets never enter the document: it names environment variables (`apiKeyEnv`,
`valueFrom: {env}`, `urlEnv`) that the Deployment fills from the referenced keys.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from agent_runtime.config import RuntimeConfig
from agent_runtime.config.agent import AgentSettings, TurnLimits
from agent_runtime.config.auth import (
    AllowedServiceAccount,
    AuthConfig,
    KubernetesApi,
    ServiceAccountAuth,
)
from agent_runtime.config.identity import PoolIdentity
from agent_runtime.config.load import LoadSettings
from agent_runtime.config.memory import (
    EmbedderSettings,
    EpisodicSettings,
    LongTermSettings,
    MemoryConfig,
    RedisSettings,
    RoutingRule,
    RoutingSettings,
    Tier,
    WorkingMemorySettings,
)
from agent_runtime.config.model import ModelConfig, ModelEndpoint, ReasoningEffort
from agent_runtime.config.secrets import EnvRef, HeaderFromEnv, HeaderValue
from agent_runtime.config.tasks import TasksSettings
from agent_runtime.config.tools import (
    AgentImplementation,
    BulkheadSettings,
    CacheSettings,
    CircuitBreakerSettings,
    CommandImplementation,
    CommandLimits,
    CommandRunnerSettings,
    FallbackSettings,
    HttpImplementation,
    McpImplementation,
    RateLimitSettings,
    ResilienceSettings,
    RetrySettings,
    StaticFallback,
    TimeoutSettings,
    ToolDefinition,
    ToolHints,
    ToolsConfig,
)
from agentpool_operator import api
from agentpool_operator.settings import DEFAULT_AGENT_IMAGE

CONFIG_DIR = "/etc/agentpool"
"""Where the agent container finds its config, instructions and CA bundles."""
CONFIG_FILE = f"{CONFIG_DIR}/config.json"
INSTRUCTIONS_FILE = f"{CONFIG_DIR}/instructions/instructions.md"
AUTH_TOKENS_FILE = f"{CONFIG_DIR}/auth/tokens.yaml"
KUBE_API_DIR = "/var/run/secrets/agentpool/kubernetes"
"""The pod's own projected token and the cluster CA, for TokenReviews."""
IDENTITY_DIR = "/var/run/secrets/agentpool/identity"
RUNNER_DIR = "/run/agentpool/tools"
RUNNER_SOCKET = f"{RUNNER_DIR}/runner.sock"
"""The tool-runner sidecar's socket, on an emptyDir only the two containers share."""
"""One projected token per agent tool, each with the called pool's audience."""
REDIS_URL_ENV = "AGENTPOOL_REDIS_URL"
MODEL_API_KEY_ENV = "AGENTPOOL_MODEL_API_KEY"


@dataclass(frozen=True)
class RenderSettings:
    """What the operator itself decides for every pool (from its own settings)."""

    default_redis_url: str | None = None
    """Redis for pools that name none; None: such pools keep working memory only."""
    agent_port: int = 8080
    """The port every agent pod serves its API on (and other pools call)."""
    agent_image: str = DEFAULT_AGENT_IMAGE
    """The agent image of pools whose podTemplate names none."""
    operator_namespace: str = "agentpool-system"
    """Where the operator runs (its pods may always reach agent pods)."""


@dataclass(frozen=True)
class SecretEnv:
    """An environment variable of the agent container, filled from a Secret key."""

    name: str
    secret: api.SecretKeyRef


@dataclass(frozen=True)
class MountedFile:
    """A file of the agent container, projected from a ConfigMap or Secret key."""

    path: str
    config_map: api.ConfigMapKeyRef | None = None
    secret: api.SecretKeyRef | None = None


@dataclass(frozen=True)
class Problem:
    """Something the spec asks for that cannot be given; the pool is Degraded by it."""

    reason: str
    message: str


@dataclass(frozen=True)
class RenderedConfig:
    """The runtime config and what the Deployment must supply for it."""

    config: RuntimeConfig
    secret_env: tuple[SecretEnv, ...]
    files: tuple[MountedFile, ...]
    problems: tuple[Problem, ...]


class _Collected:
    """Secret env vars and files gathered while rendering (kept in render order)."""

    def __init__(self) -> None:
        self.secret_env: list[SecretEnv] = []
        self.files: list[MountedFile] = []
        self.problems: list[Problem] = []

    def secret(self, env: str, ref: api.SecretKeyRef) -> str:
        self.secret_env.append(SecretEnv(env, ref))
        return env

    def header(self, env_prefix: str, index: int, header: api.HeaderSpec) -> HeaderValue:
        if header.secret_key_ref is None:
            assert header.value is not None  # exactly one of the two, by the API's rule
            return header.value
        env = self.secret(f"{env_prefix}_HEADER_{index}", header.secret_key_ref)
        return HeaderFromEnv(value_from=EnvRef(env=env))

    def headers(self, env_prefix: str, headers: Sequence[api.HeaderSpec]) -> dict[str, HeaderValue]:
        return {h.name: self.header(env_prefix, i, h) for i, h in enumerate(headers)}


def _env_part(name: str) -> str:
    # Kubernetes names hold lowercase letters, digits and '-': the mapping is one to one.
    return name.upper().replace("-", "_").replace(".", "_")


# ---------------------------------------------------------------------------- resilience


def _breaker(spec: api.CircuitBreakerSpec) -> CircuitBreakerSettings:
    count_based = spec.sliding_window_type == "CountBased"
    minimum = spec.minimum_number_of_calls
    if count_based:
        # A tool's override may raise minimumNumberOfCalls past the pool's window; the
        # breaker could never judge, so the merged value is cut to the window.
        minimum = min(minimum, spec.sliding_window_size)
    return CircuitBreakerSettings(
        enabled=spec.enabled,
        window_type="count" if count_based else "time",
        window_size=spec.sliding_window_size,
        minimum_calls=minimum,
        failure_rate_threshold=float(spec.failure_rate_threshold),
        slow_call_rate_threshold=float(spec.slow_call_rate_threshold),
        slow_call_duration_seconds=float(spec.slow_call_duration_threshold_seconds),
        wait_duration_in_open_seconds=float(spec.wait_duration_in_open_state_seconds),
        permitted_calls_in_half_open=spec.permitted_number_of_calls_in_half_open_state,
    )


def _retry(spec: api.RetrySpec) -> RetrySettings:
    initial = spec.initial_backoff_milliseconds / 1000
    return RetrySettings(
        enabled=spec.max_attempts > 1,
        max_attempts=spec.max_attempts,
        initial_backoff_seconds=initial,
        max_backoff_seconds=max(initial, spec.max_backoff_milliseconds / 1000),
        multiplier=float(spec.backoff_multiplier),
        # Full jitter up to the first wait: clients that failed together spread out.
        jitter_seconds=initial if spec.jitter else 0.0,
    )


def _merged(base: api.ApiModel, override: api.ApiModel | None) -> api.ApiModel:
    """`base` with every field `override` sets replacing it (a tool's override)."""
    if override is None:
        return base
    return base.model_copy(update=override.model_dump(exclude_none=True))


def _resilience(
    pool: api.ResilienceSpec, tool: api.ResilienceOverride | None, fallback: FallbackSettings
) -> ResilienceSettings:
    breaker = _merged(pool.circuit_breaker, tool.circuit_breaker if tool else None)
    retry = _merged(pool.retry, tool.retry if tool else None)
    bulkhead = _merged(pool.bulkhead, tool.bulkhead if tool else None)
    rate = _merged(pool.rate_limit, tool.rate_limit if tool else None)
    assert isinstance(breaker, api.CircuitBreakerSpec)
    assert isinstance(retry, api.RetrySpec)
    assert isinstance(bulkhead, api.BulkheadSpec)
    assert isinstance(rate, api.RateLimitSpec)
    timeout = tool.timeout_seconds if tool and tool.timeout_seconds else pool.timeout_seconds
    return ResilienceSettings(
        circuit_breaker=_breaker(breaker),
        retry=_retry(retry),
        timeouts=TimeoutSettings(per_call_seconds=float(timeout), per_attempt_seconds=None),
        fallback=fallback,
        bulkhead=BulkheadSettings(
            max_concurrent=bulkhead.max_concurrent_calls,
            max_wait_seconds=bulkhead.max_wait_milliseconds / 1000,
        ),
        rate_limit=RateLimitSettings(
            rate_per_second=float(rate.requests_per_second) if rate.requests_per_second else None,
            burst=rate.burst,
            max_wait_seconds=rate.max_wait_milliseconds / 1000,
        ),
    )


def _cache(pool: api.CacheSpec, tool: api.CacheOverride | None, *, shared: bool) -> CacheSettings:
    enabled = pool.enabled if tool is None or tool.enabled is None else tool.enabled
    ttl = pool.ttl_seconds if tool is None or tool.ttl_seconds is None else tool.ttl_seconds
    return CacheSettings(
        enabled=enabled,
        ttl_seconds=float(ttl),
        allow_non_read_only=False,
        max_entries=pool.max_entries,
        shared=shared,
    )


# ---------------------------------------------------------------------------- tools


def _hints(hints: api.ToolHints) -> ToolHints:
    return ToolHints(
        read_only=hints.read_only_hint,
        destructive=(
            (not hints.read_only_hint) if hints.destructive_hint is None else hints.destructive_hint
        ),
        idempotent=hints.idempotent_hint,
        open_world=True if hints.open_world_hint is None else hints.open_world_hint,
    )


def _command(spec: api.CommandToolSpec) -> CommandImplementation:
    limits = spec.limits
    return CommandImplementation(
        argv=list(spec.argv),
        allowed_binaries=list(spec.allowed_binaries),
        timeout_seconds=float(spec.timeout_seconds),
        max_output_bytes=spec.max_output_bytes,
        limits=CommandLimits(
            cpu_seconds=limits.cpu_seconds,
            memory_bytes=int(api.quantity_value(limits.memory)),
            file_size_bytes=int(api.quantity_value(limits.file_size)),
            processes=limits.processes,
        ),
        env={var.name: var.value for var in spec.env},
        working_dir=spec.working_dir,
        allow_paths=spec.allow_paths,
    )


def _definition(
    tool: api.AgentTool,
    pool: api.AgentPool,
    available: set[str],
    collected: _Collected,
    *,
    settings: RenderSettings,
    shared_cache: bool,
) -> ToolDefinition:
    spec = tool.spec
    name = tool.metadata.name
    env_prefix = f"AGENTPOOL_TOOL_{_env_part(name)}"
    fallback_tools: list[str] = []
    if spec.fallback is not None:
        for other in spec.fallback.tools:
            if other in available and other != name:
                fallback_tools.append(other)
            else:
                collected.problems.append(
                    Problem(
                        "FallbackToolMissing",
                        f"AgentTool {name} falls back to {other}, which the pool does not have",
                    )
                )
    message = spec.fallback.message if spec.fallback is not None else None
    fallback = FallbackSettings(
        tools=fallback_tools,
        static=StaticFallback(value=message) if message is not None else None,
    )
    return ToolDefinition(
        name=name,
        description=spec.description,
        parameters=spec.parameters,
        result_schema=spec.result_schema,
        hints=_hints(spec.hints),
        require_approval=spec.require_approval,
        resilience=_resilience(pool.spec.resilience, spec.resilience, fallback),
        cache=_cache(pool.spec.cache, spec.cache, shared=shared_cache),
        **_implementation(spec, name, pool, env_prefix, collected, settings),
    )


def _implementation(
    spec: api.AgentToolSpec,
    name: str,
    pool: api.AgentPool,
    env_prefix: str,
    collected: _Collected,
    settings: RenderSettings,
) -> dict[str, object]:
    if spec.http is not None:
        return {
            "http": HttpImplementation(
                url=spec.http.url,
                method=spec.http.method,
                headers=collected.headers(env_prefix, spec.http.headers),
                timeout_seconds=float(spec.http.timeout_seconds),
                max_response_bytes=spec.http.max_response_bytes,
            )
        }
    if spec.command is not None:
        return {"command": _command(spec.command)}
    if spec.mcp is not None:
        return {
            "mcp": McpImplementation(
                url=spec.mcp.url,
                tool_names=list(spec.mcp.tool_names) or None,
                prefix=name,
                require_approval=list(spec.mcp.require_approval),
                headers=collected.headers(env_prefix, spec.mcp.headers),
                timeout_seconds=float(spec.mcp.timeout_seconds),
            )
        }
    assert spec.agent is not None  # exactly one implementation, by the API's rule
    return {
        "agent": AgentImplementation(
            pool=spec.agent.pool_name,
            namespace=pool.metadata.namespace,
            port=settings.agent_port,
            timeout_seconds=float(spec.agent.timeout_seconds),
            max_response_bytes=spec.agent.max_response_bytes,
            token_file=f"{IDENTITY_DIR}/{name}.token",
        )
    }


def audience(namespace: str, pool: str) -> str:
    """The audience a projected token must carry to call a pool."""
    return f"agentpool/{namespace}/{pool}"


class Caller(NamedTuple):
    """A pool that calls another pool as a tool: its API lets the ServiceAccount in (by
    TokenReview) and its NetworkPolicy the pool's pods."""

    namespace: str
    service_account: str
    pool: str


def reviews_tokens(access: api.AccessSpec, called_by_pools: bool) -> bool:
    """Whether a pool's runtime checks projected ServiceAccount tokens, by TokenReview (so
    its ServiceAccount must be allowed to create them): it requires authentication and
    allows ServiceAccounts, named in its spec or those of the pools that call it as a
    tool. The one rule both the auth section and the token-reviewer binding follow."""
    return access.mode != "Disabled" and (bool(access.service_accounts) or called_by_pools)


def _auth(
    pool: api.AgentPool, callers: Sequence[tuple[str, str]], collected: _Collected
) -> AuthConfig:
    """`callers`: (namespace, ServiceAccount) of the pools that call this one."""
    access = pool.spec.access
    if access.mode == "Disabled":
        return AuthConfig(mode="disabled")
    tokens_file = None
    if access.tokens_secret_ref is not None:
        tokens_file = AUTH_TOKENS_FILE
        collected.files.append(MountedFile(path=AUTH_TOKENS_FILE, secret=access.tokens_secret_ref))
    namespace = pool.metadata.namespace or "default"
    allow = [
        AllowedServiceAccount(namespace=c.namespace or namespace, name=c.name, tenant=c.tenant)
        for c in access.service_accounts
    ]
    allow += [AllowedServiceAccount(namespace=ns, name=sa, tenant="*") for ns, sa in callers]
    accounts = None
    if reviews_tokens(access, bool(callers)):
        accounts = ServiceAccountAuth(
            audience=audience(namespace, pool.metadata.name),
            allow=allow,
            api=KubernetesApi(token_file=f"{KUBE_API_DIR}/token", ca_file=f"{KUBE_API_DIR}/ca.crt"),
        )
    return AuthConfig(mode="required", tokens_file=tokens_file, service_accounts=accounts)


# ---------------------------------------------------------------------------- model


def _endpoint(
    name: str,
    base_url: str,
    api_key_env: str | None,
    headers: dict[str, HeaderValue],
    ca_bundle_file: str | None,
    model: api.ModelSpec,
) -> ModelEndpoint:
    effort: ReasoningEffort | None = None
    if model.reasoning is not None:
        effort = (
            "low"
            if model.reasoning.effort == "Low"
            else ("high" if model.reasoning.effort == "High" else "medium")
        )
    return ModelEndpoint(
        name=name,
        base_url=base_url,
        api_key_env=api_key_env,
        headers=headers,
        ca_bundle_file=ca_bundle_file,
        temperature=float(model.temperature) if model.temperature is not None else None,
        top_p=float(model.top_p) if model.top_p is not None and float(model.top_p) > 0 else None,
        max_tokens=model.max_tokens,
        reasoning_effort=effort,
        context_window_tokens=model.context_window_tokens,
    )


def _ca_bundle(ref: api.CaBundleRef | None, path: str, collected: _Collected) -> str | None:
    if ref is None:
        return None
    collected.files.append(
        MountedFile(path=path, config_map=ref.config_map_key_ref, secret=ref.secret_key_ref)
    )
    return path


def _model(pool: api.AgentPoolSpec, collected: _Collected) -> ModelConfig:
    model = pool.model
    key_env = (
        collected.secret(MODEL_API_KEY_ENV, model.api_key_secret_ref)
        if model.api_key_secret_ref is not None
        else None
    )
    headers = collected.headers("AGENTPOOL_MODEL", model.headers)
    ca_file = _ca_bundle(model.ca_bundle, f"{CONFIG_DIR}/ca/model.pem", collected)
    primary = _endpoint(model.name, model.base_url, key_env, headers, ca_file, model)
    fallbacks = []
    for i, fallback in enumerate(model.fallbacks):
        if fallback.base_url is None:
            # Same endpoint, another model: same key, headers and CAs.
            endpoint = _endpoint(fallback.name, model.base_url, key_env, headers, ca_file, model)
        else:
            own_key = (
                collected.secret(f"AGENTPOOL_FALLBACK_{i}_API_KEY", fallback.api_key_secret_ref)
                if fallback.api_key_secret_ref is not None
                else None
            )
            endpoint = _endpoint(fallback.name, fallback.base_url, own_key, {}, None, model)
        fallbacks.append(endpoint)
    retry = _retry(pool.resilience.retry)
    return ModelConfig(
        primary=primary,
        fallbacks=fallbacks,
        timeout_seconds=float(model.timeout_seconds),
        circuit_breaker=_breaker(pool.resilience.circuit_breaker),
        # A chat completion asked again has no side effect: always safe to retry.
        retry=retry.model_copy(update={"retry_non_idempotent": True}),
    )


# ---------------------------------------------------------------------------- memory


def _redis(
    pool: api.AgentPoolSpec, settings: RenderSettings, collected: _Collected
) -> RedisSettings | None:
    connection = pool.memory.redis
    if connection is None:
        if settings.default_redis_url is None:
            return None
        return RedisSettings(url=settings.default_redis_url, url_env=REDIS_URL_ENV)
    if connection.url_secret_ref is not None:
        collected.secret(REDIS_URL_ENV, connection.url_secret_ref)
        return RedisSettings(url=None, url_env=REDIS_URL_ENV)
    return RedisSettings(url=connection.url, url_env=REDIS_URL_ENV)


def _memory(
    pool: api.AgentPoolSpec, redis: RedisSettings | None, model: ModelConfig, collected: _Collected
) -> MemoryConfig:
    memory = pool.memory
    has_redis = redis is not None
    long_term = has_redis if memory.long_term.enabled is None else memory.long_term.enabled
    episodic = memory.episodic.enabled
    for tier, wanted in (("longTerm", long_term), ("episodic", episodic)):
        if wanted and not has_redis:
            collected.problems.append(
                Problem(
                    "RedisRequired",
                    f"memory.{tier} is enabled but the pool has no Redis (memory.redis, or the "
                    "operator's default): the agents keep working memory only",
                )
            )
    long_term = long_term and has_redis
    episodic = episodic and has_redis
    if memory.episodic.embedder == "Endpoint":
        embedder = EmbedderSettings(
            kind="openai",
            dimensions=memory.episodic.dimensions,
            model=memory.episodic.embedding_model,
            url=model.primary.base_url,
            api_key_env=model.primary.api_key_env,
        )
    else:
        embedder = EmbedderSettings(kind="hashing", dimensions=memory.episodic.dimensions)
    return MemoryConfig(
        redis=redis,
        working_memory=WorkingMemorySettings(capacity=memory.working.capacity),
        long_term=LongTermSettings(enabled=long_term, ttl_seconds=memory.long_term.ttl_seconds),
        episodic=EpisodicSettings(
            enabled=episodic, embedder=embedder, recall_limit=memory.episodic.recall_limit
        ),
        routing=RoutingSettings(
            rules=_routing(
                long_term=(long_term, float(memory.long_term.importance_threshold)),
                episodic=(episodic, float(memory.episodic.importance_threshold)),
            )
        ),
    )


def _routing(
    *, long_term: tuple[bool, float], episodic: tuple[bool, float]
) -> tuple[RoutingRule, ...]:
    """Each importance threshold opens one more tier; the first matching rule wins."""
    thresholds: list[tuple[float, Tier]] = []
    if long_term[0]:
        thresholds.append((long_term[1], "longTerm"))
    if episodic[0]:
        thresholds.append((episodic[1], "episodic"))
    rules = []
    for level in sorted({t for t, _ in thresholds}, reverse=True):
        tiers: list[Tier] = ["working"]
        tiers += [tier for threshold, tier in thresholds if threshold <= level]
        rules.append(RoutingRule(min_importance=level, tiers=tuple(tiers)))
    if not rules or rules[-1].min_importance > 0:
        rules.append(RoutingRule(min_importance=0.0, tiers=("working",)))
    return tuple(rules)


# ---------------------------------------------------------------------------- the document


def _agent(pool: api.AgentPoolSpec, collected: _Collected) -> AgentSettings:
    limits = TurnLimits(
        max_model_calls_per_turn=pool.turn_limits.max_model_calls,
        max_tokens_per_turn=pool.turn_limits.max_tokens,
        turn_timeout_seconds=pool.turn_limits.timeout_seconds,
    )
    if pool.instructions_from is not None:
        collected.files.append(
            MountedFile(
                path=INSTRUCTIONS_FILE, config_map=pool.instructions_from.config_map_key_ref
            )
        )
        source: dict[str, str] = {"instructions_file": INSTRUCTIONS_FILE}
    else:
        assert pool.instructions is not None  # exactly one, by the API's rule
        source = {"instructions": pool.instructions}
    return AgentSettings(
        domain=pool.domain, concurrency=pool.concurrency_per_replica, limits=limits, **source
    )


def _load(pool: api.AgentPoolSpec, has_redis: bool) -> LoadSettings:
    wants_tasks = (
        pool.scaling.mode == "Operator"
        and pool.scaling.operator_settings.signal == "ActiveTurnsAndQueuedTasks"
    )
    # The task queue lives in Redis: without it there are no queued tasks to count.
    signal = "activeTurnsAndQueuedTasks" if wants_tasks and has_redis else "activeTurns"
    return LoadSettings(signal=signal, publish_interval_seconds=1.0)


def runtime_config(
    pool: api.AgentPool,
    tools: Iterable[api.AgentTool],
    settings: RenderSettings,
    callers: Sequence[Caller] = (),
) -> RenderedConfig:
    """The runtime config of `pool`, given the AgentTools it resolved (in any order) and
    the ServiceAccounts (namespace, name) of the pools that call it as a tool."""
    collected = _Collected()
    spec = pool.spec
    ordered = sorted(tools, key=lambda t: t.metadata.name)
    available = {t.metadata.name for t in ordered}
    redis = _redis(spec, settings, collected)
    model = _model(spec, collected)
    definitions = [
        _definition(t, pool, available, collected, settings=settings, shared_cache=False)
        for t in ordered
    ]
    config = RuntimeConfig(
        pool=PoolIdentity(namespace=pool.metadata.namespace or "default", name=pool.metadata.name),
        agent=_agent(spec, collected),
        model=model,
        load=_load(spec, redis is not None),
        tools=ToolsConfig(
            definitions=definitions,
            resilience=_resilience(spec.resilience, None, FallbackSettings()),
            cache=_cache(spec.cache, None, shared=False),
            # Command tools run in the tool-runner sidecar: another uid, no secrets.
            command_runner=(
                CommandRunnerSettings(socket=RUNNER_SOCKET)
                if any(d.command is not None for d in definitions)
                else None
            ),
        ),
        memory=_memory(spec, redis, model, collected),
        auth=_auth(pool, sorted({(c.namespace, c.service_account) for c in callers}), collected),
        # The queue lives in Redis; a task is a turn, so it counts against the same
        # per-replica concurrency as the turns of /v1/chat.
        tasks=TasksSettings(enabled=redis is not None, concurrency=spec.concurrency_per_replica),
    )
    return RenderedConfig(
        config=config,
        secret_env=tuple(collected.secret_env),
        files=tuple(collected.files),
        problems=tuple(collected.problems),
    )
