"""The tools section of the runtime config: tool definitions and pool-wide resilience defaults.

The operator renders one `ToolDefinition` per AgentTool the pool may use (camelCase, like
Kubernetes) and the pool's `ResilienceSettings` / `CacheSettings` defaults; `ToolsConfig`
bundles them. Secrets never appear in the document: header values name environment
variables (`valueFrom: {env: NAME}`) that the operator fills from secret references.

A tool's own `resilience` and `cache` blocks are *overrides*: only the fields a document
sets replace the pool default (see `merge_settings`).
"""

from __future__ import annotations

import re
import string
from pathlib import Path
from typing import Any, Literal, Self, TypeVar

from pydantic import BaseModel, Field, field_validator, model_validator

from agent_runtime.config.limits import (
    KUBERNETES_NAMESPACE_MAX_CHARS,
    KUBERNETES_NAMESPACE_PATTERN,
    MCP_PREFIX_PATTERN,
    POOL_NAME_MAX_CHARS,
    POOL_NAME_PATTERN,
    TOOL_NAME_PATTERN,
)
from agent_runtime.config.secrets import HeaderValue
from agent_runtime.config.section import ConfigSection

ErrorKind = Literal[
    "timeout",
    "transport",
    "server",
    "client",
    "rateLimited",
    "responseTooLarge",
    "execution",
]
"""How a failed tool call is classified; breakers and retries choose kinds, not classes."""

_BREAKER_RECORDS: tuple[ErrorKind, ...] = (
    "timeout",
    "transport",
    "server",
    "rateLimited",
    "execution",
)
_RETRY_ON: tuple[ErrorKind, ...] = ("timeout", "transport", "server", "rateLimited")

HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]


_S = TypeVar("_S", bound=BaseModel)


def merge_settings(base: _S, override: _S | None) -> _S:
    """`base` with every field that `override` explicitly set replacing it, recursively.

    Nested sections merge field by field too, so a tool that sets only
    `retry.maxAttempts` keeps the pool's backoff.
    """
    if override is None:
        return base
    updates: dict[str, Any] = {}
    for name in override.model_fields_set:
        mine = getattr(override, name)
        theirs = getattr(base, name)
        if isinstance(mine, BaseModel) and isinstance(theirs, type(mine)):
            updates[name] = merge_settings(theirs, mine)
        else:
            updates[name] = mine
    return base.model_copy(update=updates)


# ----------------------------------------------------------------------------- hints


class ToolHints(ConfigSection):
    """Behaviour hints with MCP annotation semantics (`readOnlyHint` and friends).

    `destructive` and `idempotent` are meaningful only when `readOnly` is false; a
    read-only tool is treated as idempotent for retries and as cacheable.
    """

    read_only: bool = Field(default=False, description="The tool changes nothing.")
    destructive: bool = Field(
        default=True, description="A call may destroy or overwrite data (when not read-only)."
    )
    idempotent: bool = Field(
        default=False, description="Repeating a call has no further effect (when not read-only)."
    )
    open_world: bool = Field(
        default=True, description="The tool reaches outside the pool (the internet, other teams)."
    )

    @property
    def safe_to_repeat(self) -> bool:
        """Whether calling twice has the same effect as calling once."""
        return self.read_only or self.idempotent


# ----------------------------------------------------------------------------- kinds


class HttpImplementation(ConfigSection):
    """Call an HTTP endpoint.

    `{name}` placeholders in the URL are filled from (and consume) the arguments, URL-quoted;
    the remaining arguments go in the query string for GET and DELETE, else as a JSON body.
    """

    url: str = Field(pattern=r"^https?://")
    method: HttpMethod = "POST"
    headers: dict[str, HeaderValue] = Field(default_factory=dict)
    timeout_seconds: float = Field(default=30.0, gt=0, le=3600)
    max_response_bytes: int = Field(default=1 << 20, gt=0, le=1 << 30)


class CommandLimits(ConfigSection):
    """Kernel resource limits applied to the child process (setrlimit)."""

    cpu_seconds: int = Field(default=10, ge=1, le=3600)
    memory_bytes: int = Field(default=512 << 20, ge=16 << 20)
    file_size_bytes: int = Field(default=16 << 20, ge=0)
    processes: int = Field(
        default=16, ge=1, le=4096, description="Processes the command may have at once."
    )


_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class CommandImplementation(ConfigSection):
    """Run a program directly (never through a shell) in a sandbox.

    `argv` is a template: the first element is a literal binary that must be on
    `allowedBinaries`; any other element may contain `{name}` placeholders, each filled
    from one argument and kept inside that one argv element. Values starting with `-`
    are refused unless they come after a literal `--`. Unless `allowPaths` is set, an
    assembled element (or the value of an `--option=value` element) with a `..`
    component, or absolute where the template was not, is refused. An absent optional
    argument drops its element only if that shifts no other argument (an option element,
    or trailing positionals); otherwise the call is refused.
    """

    argv: list[str] = Field(min_length=1)
    allowed_binaries: list[str] = Field(min_length=1)
    timeout_seconds: float = Field(default=10.0, gt=0, le=3600)
    max_output_bytes: int = Field(default=64 << 10, gt=0, le=64 << 20)
    limits: CommandLimits = Field(default_factory=CommandLimits)
    env: dict[str, str] = Field(
        default_factory=dict, description="Extra literal environment for the command."
    )
    working_dir: str | None = Field(
        default=None,
        pattern=r"^/",
        description="Absolute working directory; unset: a fresh private directory per call.",
    )
    allow_paths: bool = False

    @model_validator(mode="after")
    def _binary_is_literal_and_allowed(self) -> Self:
        binary = self.argv[0]
        if _PLACEHOLDER.search(binary) or "{" in binary:
            raise ValueError("argv[0] must be a literal binary, not a placeholder")
        names = {b.rsplit("/", 1)[-1] for b in self.allowed_binaries}
        if binary not in self.allowed_binaries and binary.rsplit("/", 1)[-1] not in names:
            raise ValueError(f"argv[0] {binary!r} is not in allowedBinaries")
        for element in self.argv[1:]:
            for _, field_name, _, _ in string.Formatter().parse(element):
                if field_name is not None and not _PLACEHOLDER.fullmatch("{" + field_name + "}"):
                    raise ValueError(f"argv element {element!r} has a malformed placeholder")
        return self

    def placeholders(self) -> set[str]:
        """The argument names the template refers to."""
        return {m.group(1) for element in self.argv[1:] for m in _PLACEHOLDER.finditer(element)}


class McpImplementation(ConfigSection):
    """Tools served by an MCP server over streamable HTTP.

    The server's tools are discovered at start-up (schemas, result schemas and hints
    come from the server) and registered as `{prefix}__{remoteName}`: all of them, or
    only those named in `toolNames`.
    """

    url: str = Field(pattern=r"^https?://", description="The server's streamable-HTTP URL.")
    tool_names: list[str] | None = Field(
        default=None,
        min_length=1,
        description="The remote tools to register; unset: every tool the server lists.",
    )
    prefix: str | None = Field(
        default=None,
        pattern=MCP_PREFIX_PATTERN,
        description="Prefix of the registered names; defaults to the definition's name.",
    )
    require_approval: list[str] = Field(
        default_factory=list,
        description="Remote tools (by the server's name) whose calls a person approves first.",
    )
    headers: dict[str, HeaderValue] = Field(
        default_factory=dict, description="Extra request headers (literal or from the env)."
    )
    timeout_seconds: float = Field(
        default=60.0, gt=0, le=3600, description="Deadline of one request to the server."
    )

    @field_validator("tool_names")
    @classmethod
    def _distinct(cls, names: list[str] | None) -> list[str] | None:
        if names is not None and len(set(names)) != len(names):
            raise ValueError("toolNames lists a name twice")
        return names


class AgentImplementation(ConfigSection):
    """Another pool's chat API as a tool (multi-agent collaboration).

    Either `url` (the pool's base URL) or `pool` (+ `namespace`, `port`): the operator
    names a pool's Service after the pool.
    """

    url: str | None = Field(
        default=None, pattern=r"^https?://", description="The other pool's base URL."
    )
    pool: str | None = Field(
        default=None,
        pattern=POOL_NAME_PATTERN,
        max_length=POOL_NAME_MAX_CHARS,
        description="The other pool's name (its Service has the same name).",
    )
    namespace: str | None = Field(
        default=None,
        pattern=KUBERNETES_NAMESPACE_PATTERN,
        max_length=KUBERNETES_NAMESPACE_MAX_CHARS,
        description="The other pool's Kubernetes namespace; unset: this pod's namespace.",
    )
    port: int = Field(default=8080, ge=1, le=65535, description="The other pool's HTTP port.")
    headers: dict[str, HeaderValue] = Field(
        default_factory=dict, description="Extra request headers (literal or from the env)."
    )
    timeout_seconds: float = Field(
        default=120.0, gt=0, le=3600, description="Deadline of one chat request."
    )
    max_response_bytes: int = Field(
        default=1 << 20, gt=0, le=1 << 30, description="Largest answer accepted."
    )
    token_file: Path | None = Field(
        default=None,
        description="This pool's projected ServiceAccount token (audience: the other pool's "
        "`auth.serviceAccounts.audience`), sent as `Authorization: Bearer`; re-read on "
        "every call, as the kubelet rotates it. Null: no credentials are sent.",
    )

    @model_validator(mode="after")
    def _one_target(self) -> Self:
        if (self.url is None) == (self.pool is None):
            raise ValueError("set exactly one of `url` or `pool`")
        return self

    def base_url(self) -> str:
        """The other pool's base URL."""
        if self.url is not None:
            return self.url.rstrip("/")
        where = f"{self.pool}.{self.namespace}.svc" if self.namespace else f"{self.pool}"
        return f"http://{where}:{self.port}"


# ----------------------------------------------------------------------------- resilience


class CircuitBreakerSettings(ConfigSection):
    """A circuit breaker (see `agent_runtime.resilience.breaker`)."""

    enabled: bool = Field(default=True, description="Guard the dependency with a breaker.")
    window_type: Literal["count", "time"] = Field(
        default="count", description="Judge the last `windowSize` calls, or seconds."
    )
    window_size: int = Field(default=20, ge=1, le=10_000, description="Calls, or seconds.")
    minimum_calls: int = Field(
        default=10, ge=1, description="Calls in the window before the rates are judged."
    )
    failure_rate_threshold: float = Field(
        default=50.0, gt=0, le=100, description="Percent of failed calls that opens the breaker."
    )
    slow_call_rate_threshold: float = Field(
        default=100.0, gt=0, le=100, description="Percent of slow calls that opens the breaker."
    )
    slow_call_duration_seconds: float = Field(
        default=10.0, gt=0, description="A call slower than this counts as slow."
    )
    wait_duration_in_open_seconds: float = Field(
        default=30.0, gt=0, description="How long the breaker stays open before trial calls."
    )
    permitted_calls_in_half_open: int = Field(
        default=3, ge=1, description="Trial calls allowed while half-open."
    )
    record_on: list[ErrorKind] = Field(
        default_factory=lambda: list(_BREAKER_RECORDS),
        description="Failure kinds that count against the dependency.",
    )
    shared: bool = Field(default=False, description="Share the open state through Redis.")
    sync_interval_seconds: float = Field(
        default=1.0, ge=0, description="How stale a replica's view of the shared state may be."
    )


class RetrySettings(ConfigSection):
    """Retries with exponential backoff and jitter (tenacity)."""

    enabled: bool = Field(default=True, description="Retry failed attempts at all.")
    max_attempts: int = Field(default=3, ge=1, le=20, description="Attempts, the first included.")
    initial_backoff_seconds: float = Field(
        default=0.1, ge=0, description="Wait before the second attempt."
    )
    max_backoff_seconds: float = Field(default=5.0, ge=0, description="Longest wait.")
    multiplier: float = Field(default=2.0, ge=1, description="Growth of the wait per attempt.")
    jitter_seconds: float = Field(
        default=0.1, ge=0, description="Random extra wait, up to this much."
    )
    retry_non_idempotent: bool = Field(
        default=False, description="Retry tools that are neither read-only nor idempotent."
    )
    retry_on: list[ErrorKind] = Field(
        default_factory=lambda: list(_RETRY_ON), description="Failure kinds that are retried."
    )


class TimeoutSettings(ConfigSection):
    """Deadlines: for the whole call (all attempts) and for each attempt."""

    per_call_seconds: float | None = Field(
        default=120.0, gt=0, description="Deadline of the whole call; null: none."
    )
    per_attempt_seconds: float | None = Field(
        default=None, gt=0, description="Defaults to the implementation's own timeout."
    )


class StaticFallback(ConfigSection):
    """A fixed answer used when everything else failed."""

    value: Any = Field(default=None, description="The answer (any JSON value).")


class FallbackSettings(ConfigSection):
    """What answers when the tool fails: other tools in order, then a static value."""

    tools: list[str] = Field(
        default_factory=list, description="Tools asked in order when this one fails."
    )
    static: StaticFallback | None = Field(
        default=None, description="The answer when every fallback tool failed too."
    )


class BulkheadSettings(ConfigSection):
    """A per-tool concurrency limit."""

    max_concurrent: int = Field(default=32, ge=1, description="Calls running at once.")
    max_wait_seconds: float = Field(
        default=5.0, ge=0, description="How long a call waits for a slot before it is refused."
    )


class RateLimitSettings(ConfigSection):
    """A per-tool token bucket; `ratePerSecond: null` disables it."""

    rate_per_second: float | None = Field(
        default=None, gt=0, description="Sustained calls per second; null: unlimited."
    )
    burst: int = Field(default=10, ge=1, description="Calls allowed at once above the rate.")
    max_wait_seconds: float = Field(
        default=0.0, ge=0, description="How long a call waits for a token before it is refused."
    )


class ResilienceSettings(ConfigSection):
    """The resilience policy: pool defaults, or (as a tool's `resilience`) overrides."""

    circuit_breaker: CircuitBreakerSettings = Field(
        default_factory=CircuitBreakerSettings, description="The breaker."
    )
    retry: RetrySettings = Field(default_factory=RetrySettings, description="Retries.")
    timeouts: TimeoutSettings = Field(default_factory=TimeoutSettings, description="Deadlines.")
    fallback: FallbackSettings = Field(
        default_factory=FallbackSettings, description="What answers on failure."
    )
    bulkhead: BulkheadSettings = Field(
        default_factory=BulkheadSettings, description="The concurrency limit."
    )
    rate_limit: RateLimitSettings = Field(
        default_factory=RateLimitSettings, description="The rate limit."
    )


class CacheSettings(ConfigSection):
    """Result caching: pool defaults, or (as a tool's `cache`) overrides.

    Only read-only tools are cached unless `allowNonReadOnly` is set for the tool.
    """

    enabled: bool = Field(default=True, description="Cache results at all.")
    ttl_seconds: float = Field(default=300.0, gt=0, description="How long a result is reused.")
    allow_non_read_only: bool = Field(
        default=False, description="Cache this tool even though it is not read-only."
    )
    max_entries: int = Field(default=4096, ge=1, description="Pool-wide; ignored per tool.")
    shared: bool = Field(
        default=False, description="Also cache in Redis, shared by replicas. Pool-wide."
    )


# ----------------------------------------------------------------------------- definitions


class ToolDefinition(ConfigSection):
    """One tool as the operator renders it from an AgentTool resource.

    Exactly one of `http`, `command`, `mcp`, `agent` is set. `parameters` is a JSON
    Schema object (MCP `inputSchema` shape): required for http and command tools, the
    fixed agent-call shape (`{message, conversationId}`) by default for agent tools, and
    never set for MCP tools, whose schemas come from the server. For MCP tools,
    `description` and `hints`, when set, replace what the server says for every tool.
    """

    name: str = Field(pattern=TOOL_NAME_PATTERN, description="The tool's name.")
    description: str = Field(default="", description="What the tool does, for the model.")
    parameters: dict[str, Any] | None = Field(
        default=None, description="JSON Schema of the arguments (an object schema)."
    )
    result_schema: dict[str, Any] | None = Field(
        default=None, description="JSON Schema every result must match; unset: unchecked."
    )
    hints: ToolHints = Field(default_factory=ToolHints, description="Behaviour hints.")
    require_approval: bool = Field(
        default=False, description="A person approves each call before it runs."
    )
    http: HttpImplementation | None = Field(default=None, description="An HTTP endpoint.")
    command: CommandImplementation | None = Field(default=None, description="A sandboxed program.")
    mcp: McpImplementation | None = Field(default=None, description="An MCP server's tools.")
    agent: AgentImplementation | None = Field(default=None, description="Another pool.")
    resilience: ResilienceSettings | None = Field(
        default=None, description="Overrides of the pool's resilience, merged field by field."
    )
    cache: CacheSettings | None = Field(
        default=None, description="Overrides of the pool's cache settings, field by field."
    )

    @field_validator("parameters", "result_schema")
    @classmethod
    def _object_schema(cls, schema: dict[str, Any] | None) -> dict[str, Any] | None:
        if schema is not None and schema.get("type", "object") != "object":
            raise ValueError('a tool schema must describe an object ("type": "object")')
        return schema

    @model_validator(mode="after")
    def _exactly_one_kind(self) -> Self:
        set_kinds = [k for k in ("http", "command", "mcp", "agent") if getattr(self, k) is not None]
        if len(set_kinds) != 1:
            raise ValueError(
                f"set exactly one of http, command, mcp, agent (got {set_kinds or 'none'})"
            )
        if self.parameters is None and set_kinds[0] in ("http", "command"):
            raise ValueError(f"`parameters` is required for {set_kinds[0]} tools")
        if self.mcp is not None and (self.parameters or self.result_schema) is not None:
            raise ValueError("mcp tools take `parameters` and `resultSchema` from the server")
        declared = set((self.parameters or {}).get("properties", {}))
        if self.command is not None:
            missing = self.command.placeholders() - declared
            if missing:
                raise ValueError(
                    f"command.argv uses placeholders not declared in parameters: {sorted(missing)}"
                )
        if self.http is not None:
            missing = set(_PLACEHOLDER.findall(self.http.url)) - declared
            if missing:
                raise ValueError(
                    f"http.url uses placeholders not declared in parameters: {sorted(missing)}"
                )
        return self

    @property
    def kind(self) -> Literal["http", "command", "mcp", "agent"]:
        """Which implementation this definition uses."""
        if self.http is not None:
            return "http"
        if self.command is not None:
            return "command"
        if self.mcp is not None:
            return "mcp"
        return "agent"


class CommandRunnerSettings(ConfigSection):
    """Where command tools run: the tool-runner container's Unix socket.

    The operator renders it with the tool-runner sidecar (same pod, another uid, no
    secrets). Without it a runtime runs commands in a supervisor of its own process,
    which is not a security boundary (docs/security.md).
    """

    socket: str = Field(
        pattern=r"^/",
        max_length=107,  # sun_path holds 108 bytes with its NUL
        description="Absolute path of the tool-runner's Unix socket (on a shared emptyDir).",
    )


class ToolsConfig(ConfigSection):
    """Every tool of the pool, and the pool's resilience and cache defaults."""

    definitions: list[ToolDefinition] = Field(
        default_factory=list, description="One definition per AgentTool the pool may use."
    )
    resilience: ResilienceSettings = Field(
        default_factory=ResilienceSettings, description="The pool's resilience defaults."
    )
    cache: CacheSettings = Field(
        default_factory=CacheSettings, description="The pool's cache defaults."
    )
    command_runner: CommandRunnerSettings | None = Field(
        default=None,
        description="The tool-runner that runs command tools; null: in this process's "
        "supervisor (a runtime started by hand; not a security boundary).",
    )

    def needs_redis(self) -> list[str]:
        """The fields (as document paths) whose settings only work with Redis."""
        found = []
        if self.cache.shared:
            found.append("tools.cache.shared")
        if self.resilience.circuit_breaker.shared:
            found.append("tools.resilience.circuitBreaker.shared")
        for i, definition in enumerate(self.definitions):
            override = definition.resilience
            if override is not None and override.circuit_breaker.shared:
                found.append(f"tools.definitions.{i}.resilience.circuitBreaker.shared")
        return found

    @model_validator(mode="after")
    def _unique_names(self) -> Self:
        seen: set[str] = set()
        for definition in self.definitions:
            if definition.name in seen:
                raise ValueError(f"tool name {definition.name!r} is defined twice")
            seen.add(definition.name)
        return self
