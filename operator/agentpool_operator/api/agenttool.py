"""AgentTool: one tool an agent may call, implemented by an HTTP endpoint, a program, the
tools of an MCP server, or another AgentPool."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

import jsonschema
from pydantic import Field, StringConstraints, field_validator

from agent_runtime.config.limits import (
    MCP_PREFIX_MAX_CHARS,
    TOOL_NAME_MAX_CHARS,
    TOOL_NAME_PATTERN,
)
from agentpool_operator.api.agentpool import PoolName, ToolImplementation
from agentpool_operator.api.common import (
    Condition,
    HeaderSpec,
    KubeResource,
)
from agentpool_operator.api.schema import (
    AbsolutePath,
    ApiModel,
    EnvName,
    HttpUrl,
    Multiplier,
    NameKeyed,
    NameRule,
    Quantity,
    Rule,
    list_map,
    quantity_value,
    section,
)

PLACEHOLDER = r"[{][A-Za-z_][A-Za-z0-9_]*[}]"
"""A {name} placeholder, filled from the call's argument of that name."""

MCPToolName = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.-]+$")
]
"""A tool name as an MCP server lists it."""

# ---------------------------------------------------------------------------- implementations


class HTTPToolSpec(ApiModel):
    """The tool is an HTTP endpoint. The arguments go in the query string for GET and
    DELETE, else as a JSON body."""

    url: HttpUrl
    """Endpoint URL. Each {name} placeholder is filled from the argument of that name,
    percent-encoded, and must be declared in parameters."""
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    """HTTP method."""
    headers: NameKeyed[HeaderSpec] = list_map("name", max_items=32)
    """Headers sent with each call. Defaults to none."""
    timeout_seconds: int = Field(default=30, ge=1, le=600)
    """Timeout of one attempt, in seconds."""
    max_response_bytes: int = Field(default=1_048_576, ge=1, le=67_108_864)
    """A longer response is an error."""


class CommandLimitsSpec(ApiModel):
    """Kernel limits on the program and its children."""

    cpu_seconds: int = Field(default=10, ge=1, le=3600)
    """CPU time, in seconds."""
    memory: Quantity = "512Mi"
    """Address space, a quantity such as 512Mi; at least 16Mi."""
    file_size: Quantity = "16Mi"
    """Largest file the program may write, a quantity."""
    processes: int = Field(default=16, ge=1, le=4096)
    """Processes the program may have at once."""

    cel_rules = (
        Rule(
            cel="quantity(string(self.memory)).compareTo(quantity('16Mi')) >= 0",
            message="memory must be at least 16Mi",
            field_path=".memory",
            check=lambda s: quantity_value(s.memory) >= 16 * 2**20,
        ),
        Rule(
            cel="quantity(string(self.fileSize)).compareTo(quantity('0')) >= 0",
            message="fileSize must not be negative",
            field_path=".fileSize",
            check=lambda s: quantity_value(s.file_size) >= 0,
        ),
    )


class CommandEnvVar(ApiModel):
    """A literal environment variable of the program (secrets never reach the sandbox)."""

    name: EnvName
    """Variable name."""
    value: Annotated[str, StringConstraints(max_length=4096)] = ""
    """Value."""


ArgvElement = Annotated[str, StringConstraints(min_length=1, max_length=1024)]


class CommandToolSpec(ApiModel):
    """The tool runs a program, without a shell, in the pool's sandbox."""

    argv: list[ArgvElement] = Field(min_length=1, max_length=32)
    """Program and arguments. Each {name} placeholder in an argument is filled from the
    argument of that name, inside that one argv entry (no shell, no word splitting), and
    must be declared in parameters. The program (argv[0]) is literal."""
    allowed_binaries: list[ArgvElement] = Field(min_length=1, max_length=32)
    """Programs this tool may run; argv[0] must be one of them."""
    working_dir: AbsolutePath | None = None
    """Working directory. Defaults to a fresh private directory per call."""
    timeout_seconds: int = Field(default=30, ge=1, le=3600)
    """The program and its children are killed after this many seconds."""
    max_output_bytes: int = Field(default=65_536, ge=1, le=16_777_216)
    """Output beyond this many bytes is cut off."""
    limits: CommandLimitsSpec = section(CommandLimitsSpec)
    """Kernel limits."""
    env: NameKeyed[CommandEnvVar] = list_map("name", max_items=32)
    """Literal environment of the program, beside a minimal fixed one. Defaults to none."""
    allow_paths: bool = False
    """Whether filled arguments may be absolute paths or contain .. elements."""

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


class MCPServerSpec(ApiModel):
    """The tool is a remote MCP server (streamable HTTP transport); its tools become the
    pool's tools, each named after the AgentTool and the server's name for it."""

    url: HttpUrl
    """URL of the MCP server's endpoint."""
    tool_names: list[MCPToolName] = Field(default_factory=list, max_length=256)
    """The server's tools the agents may use. Defaults to every tool the server lists,
    discovered and shown in the AgentTool's status."""
    require_approval: list[MCPToolName] = Field(default_factory=list, max_length=256)
    """Tools whose calls need a person's approval before they run; a subset of toolNames
    when toolNames is set. Defaults to none."""
    headers: NameKeyed[HeaderSpec] = list_map("name", max_items=32)
    """Headers sent with each request, e.g. an Authorization header from a Secret.
    Defaults to none."""
    timeout_seconds: int = Field(default=30, ge=1, le=600)
    """Timeout of one call, in seconds."""

    cel_rules = (
        Rule(
            cel="!has(self.toolNames) || size(self.toolNames) == 0 || "
            "!has(self.requireApproval) || self.requireApproval.all(n, n in self.toolNames)",
            message="requireApproval must be a subset of toolNames",
            field_path=".requireApproval",
            check=lambda s: not s.tool_names or set(s.require_approval) <= set(s.tool_names),
        ),
    )


class AgentCallSpec(ApiModel):
    """The tool is another AgentPool of the namespace: the calling agent hands it a task
    (multi-agent collaboration). Its parameters are fixed: a message and, optionally, a
    conversationId to continue."""

    pool_name: PoolName
    """Name of the AgentPool that answers."""
    timeout_seconds: int = Field(default=120, ge=1, le=3600)
    """Timeout of one delegated turn, in seconds."""
    max_response_bytes: int = Field(default=1_048_576, ge=1, le=67_108_864)
    """A longer answer is an error."""


class ToolHints(ApiModel):
    """Behaviour hints, as in MCP tool annotations; they decide what is safe to retry,
    cache or re-run after a crash."""

    read_only_hint: bool = False
    """The tool changes nothing."""
    destructive_hint: bool | None = None
    """The tool may destroy or overwrite data (only meaningful when not read-only).
    Defaults to true for tools that are not read-only, as in MCP."""
    idempotent_hint: bool = False
    """Calling the tool again with the same arguments has no further effect."""
    open_world_hint: bool | None = None
    """The tool interacts with an open world of external entities. Defaults to true."""

    cel_rules = (
        Rule(
            cel="!(self.readOnlyHint && has(self.destructiveHint) && self.destructiveHint)",
            message="a tool with readOnlyHint cannot have destructiveHint",
            field_path=".destructiveHint",
            check=lambda s: not (s.read_only_hint and s.destructive_hint is True),
        ),
    )


# ---------------------------------------------------------------------------- overrides


class CircuitBreakerOverride(ApiModel):
    """Fields of the pool's circuit breaker this tool replaces; the rest are the pool's."""

    enabled: bool | None = None
    """See the pool's circuitBreaker.enabled. Defaults to the pool's."""
    failure_rate_threshold: int | None = Field(default=None, ge=1, le=100)
    """See the pool's. Defaults to the pool's."""
    slow_call_rate_threshold: int | None = Field(default=None, ge=1, le=100)
    """See the pool's. Defaults to the pool's."""
    slow_call_duration_threshold_seconds: int | None = Field(default=None, ge=1, le=3600)
    """See the pool's. Defaults to the pool's."""
    sliding_window_type: Literal["CountBased", "TimeBased"] | None = None
    """See the pool's. Defaults to the pool's."""
    sliding_window_size: int | None = Field(default=None, ge=1, le=10_000)
    """See the pool's. Defaults to the pool's."""
    minimum_number_of_calls: int | None = Field(default=None, ge=1, le=10_000)
    """See the pool's; with CountBased, the merged value is cut to slidingWindowSize.
    Defaults to the pool's."""
    wait_duration_in_open_state_seconds: int | None = Field(default=None, ge=1, le=3600)
    """See the pool's. Defaults to the pool's."""
    permitted_number_of_calls_in_half_open_state: int | None = Field(default=None, ge=1, le=100)
    """See the pool's. Defaults to the pool's."""


class RetryOverride(ApiModel):
    """Fields of the pool's retry this tool replaces; the rest are the pool's."""

    max_attempts: int | None = Field(default=None, ge=1, le=20)
    """See the pool's retry.maxAttempts. Defaults to the pool's."""
    initial_backoff_milliseconds: int | None = Field(default=None, ge=0, le=600_000)
    """See the pool's. Defaults to the pool's."""
    max_backoff_milliseconds: int | None = Field(default=None, ge=0, le=600_000)
    """See the pool's; a merged wait above it is cut to it. Defaults to the pool's."""
    backoff_multiplier: Multiplier | None = None
    """See the pool's. Defaults to the pool's."""
    jitter: bool | None = None
    """See the pool's. Defaults to the pool's."""


class BulkheadOverride(ApiModel):
    """Fields of the pool's bulkhead this tool replaces; the rest are the pool's."""

    max_concurrent_calls: int | None = Field(default=None, ge=1, le=10_000)
    """See the pool's bulkhead.maxConcurrentCalls. Defaults to the pool's."""
    max_wait_milliseconds: int | None = Field(default=None, ge=0, le=600_000)
    """See the pool's. Defaults to the pool's."""


class RateLimitOverride(ApiModel):
    """Fields of the pool's rate limit this tool replaces; the rest are the pool's."""

    requests_per_second: int | None = Field(default=None, ge=1, le=100_000)
    """See the pool's rateLimit.requestsPerSecond. Defaults to the pool's."""
    burst: int | None = Field(default=None, ge=1, le=100_000)
    """See the pool's. Defaults to the pool's."""
    max_wait_milliseconds: int | None = Field(default=None, ge=0, le=600_000)
    """See the pool's. Defaults to the pool's."""


class ResilienceOverride(ApiModel):
    """This tool's changes to the pool's resilience settings, merged field by field."""

    circuit_breaker: CircuitBreakerOverride | None = None
    """Circuit breaker fields. Defaults to the pool's."""
    retry: RetryOverride | None = None
    """Retry fields. Defaults to the pool's."""
    timeout_seconds: int | None = Field(default=None, ge=1, le=3600)
    """Timeout of one call, all attempts included, in seconds. Defaults to the pool's."""
    bulkhead: BulkheadOverride | None = None
    """Bulkhead fields. Defaults to the pool's."""
    rate_limit: RateLimitOverride | None = None
    """Rate limit fields. Defaults to the pool's."""


class CacheOverride(ApiModel):
    """This tool's changes to the pool's cache, merged field by field."""

    enabled: bool | None = None
    """Whether this tool's results are cached; only read-only tools may be. Defaults to
    the pool's."""
    ttl_seconds: int | None = Field(default=None, ge=1, le=86_400)
    """How long a result stays fresh, in seconds. Defaults to the pool's."""


class ToolFallback(ApiModel):
    """What answers when the tool fails for good: other tools, then a fixed message."""

    tools: list[
        Annotated[str, StringConstraints(max_length=TOOL_NAME_MAX_CHARS, pattern=TOOL_NAME_PATTERN)]
    ] = Field(default_factory=list, max_length=4)
    """Other AgentTools of the pool, by name, tried in order with the same arguments.
    Defaults to none."""
    message: Annotated[str, StringConstraints(min_length=1, max_length=4096)] | None = None
    """A fixed result given to the model when everything failed. Defaults to none: the
    model sees the error."""


# ---------------------------------------------------------------------------- the tool


def _json_schema_field(description: str) -> Any:
    return Field(
        default=None,
        description=description,
        json_schema_extra={
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": True,
            # Only the top is structural: type (so the server refuses a non-object
            # schema) and properties (so CEL can check placeholders against it).
            "properties": {
                "type": {
                    "type": "string",
                    "enum": ["object"],
                    "description": "Always object: a tool takes named arguments.",
                },
                "properties": {
                    "type": "object",
                    "description": "The arguments by name, each a JSON Schema. Defaults to none.",
                    "additionalProperties": {"x-kubernetes-preserve-unknown-fields": True},
                },
            },
            "required": ["type"],
        },
    )


def _placeholders(text: str) -> set[str]:
    return {match[1:-1] for match in re.findall(PLACEHOLDER, text)}


def _declared(spec: AgentToolSpec) -> set[str]:
    properties = (spec.parameters or {}).get("properties", {})
    return set(properties) if isinstance(properties, dict) else set()


_DECLARED_CEL = (
    "has(self.parameters) && has(self.parameters.properties) && "
    "p.substring(1, size(p) - 1) in self.parameters.properties"
)


class AgentToolSpec(ApiModel):
    """The desired state of an AgentTool: one tool an agent may call, with exactly one
    implementation (http, command, mcp or agent)."""

    description: Annotated[str, StringConstraints(min_length=1, max_length=4096)]
    """What the tool does and when to use it; the model reads this to choose tools."""
    parameters: dict[str, Any] | None = _json_schema_field(
        "The arguments, as a JSON Schema object with type object (the shape of an MCP "
        "tool's inputSchema and of OpenAI function parameters). Required for http and "
        "command tools; an mcp tool takes each tool's schema from the server and an agent "
        "tool has fixed parameters. Defaults to none."
    )
    result_schema: dict[str, Any] | None = _json_schema_field(
        "A JSON Schema the tool's results must satisfy; a result that does not is an "
        "error. Defaults to none."
    )
    hints: ToolHints = section(ToolHints)
    """Behaviour hints."""
    require_approval: bool = False
    """Whether every call needs a person's approval before it runs (for mcp, see also
    mcp.requireApproval)."""
    http: HTTPToolSpec | None = None
    """Call an HTTP endpoint. Defaults to none."""
    command: CommandToolSpec | None = None
    """Run a program without a shell. Defaults to none."""
    mcp: MCPServerSpec | None = None
    """Use the tools of a remote MCP server. Defaults to none."""
    agent: AgentCallSpec | None = None
    """Delegate to another AgentPool. Defaults to none."""
    resilience: ResilienceOverride | None = None
    """Changes to the pool's resilience settings for this tool. Defaults to the pool's."""
    cache: CacheOverride | None = None
    """Changes to the pool's cache for this tool. Defaults to the pool's."""
    fallback: ToolFallback | None = None
    """What answers when the tool fails. Defaults to none: the model sees the error."""

    cel_rules = (
        Rule(
            cel="[has(self.http), has(self.command), has(self.mcp), has(self.agent)]"
            ".filter(x, x).size() == 1",
            message="exactly one of http, command, mcp or agent must be set",
            check=lambda s: sum(x is not None for x in (s.http, s.command, s.mcp, s.agent)) == 1,
        ),
        Rule(
            cel="(has(self.http) || has(self.command)) == has(self.parameters)",
            message="parameters is required for http and command tools, and not allowed for "
            "mcp tools (the server gives each tool's schema) or agent tools (fixed parameters)",
            field_path=".parameters",
            check=lambda s: (
                (s.http is not None or s.command is not None) == (s.parameters is not None)
            ),
        ),
        Rule(
            cel="!has(self.mcp) || !has(self.resultSchema)",
            message="resultSchema is not allowed for mcp tools: the server gives each tool's",
            field_path=".resultSchema",
            check=lambda s: s.mcp is None or s.result_schema is None,
        ),
        Rule(
            cel=f"!has(self.http) || self.http.url.findAll('{PLACEHOLDER}')"
            f".all(p, {_DECLARED_CEL})",
            message="every {name} placeholder of http.url must be declared in "
            "parameters.properties",
            field_path=".http.url",
            check=lambda s: s.http is None or _placeholders(s.http.url) <= _declared(s),
        ),
        Rule(
            cel=f"!has(self.command) || self.command.argv.all(a, a.findAll('{PLACEHOLDER}')"
            f".all(p, {_DECLARED_CEL}))",
            message="every {name} placeholder of command.argv must be declared in "
            "parameters.properties",
            field_path=".command.argv",
            check=lambda s: (
                s.command is None
                or set().union(*(_placeholders(a) for a in s.command.argv)) <= _declared(s)
            ),
        ),
        Rule(
            cel="!has(self.cache) || !has(self.cache.enabled) || !self.cache.enabled "
            "|| self.hints.readOnlyHint",
            message="cache can only be enabled for tools with readOnlyHint",
            field_path=".cache.enabled",
            check=lambda s: s.cache is None or not s.cache.enabled or s.hints.read_only_hint,
        ),
    )

    @field_validator("parameters", "result_schema")
    @classmethod
    def _is_object_json_schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        if value.get("type") != "object":
            raise ValueError("must be a JSON Schema with type: object")
        properties = value.get("properties", {})
        if not isinstance(properties, dict):
            raise ValueError("properties must be an object")
        try:
            jsonschema.Draft202012Validator.check_schema(value)
        except jsonschema.SchemaError as exc:
            raise ValueError(f"is not a valid JSON Schema: {exc.message}") from exc
        return value

    @property
    def implementation(self) -> ToolImplementation:
        """Which implementation is set."""
        if self.http is not None:
            return "HTTP"
        if self.command is not None:
            return "Command"
        if self.mcp is not None:
            return "MCP"
        return "Agent"


# ---------------------------------------------------------------------------- status

ToolConditionType = Literal["Ready", "Discovered"]


class DiscoveredTools(ApiModel):
    """What the last discovery of an MCP server found."""

    names: list[MCPToolName] = Field(default_factory=list, max_length=1024)
    """The server's tools that the pools get. Defaults to none."""
    last_discovery_time: datetime | None = None
    """When the server was last asked. Defaults to none."""


class AgentToolStatus(ApiModel):
    """The observed state of an AgentTool, written by the operator."""

    observed_generation: int | None = Field(default=None, ge=0)
    """The metadata.generation this status describes. Defaults to none."""
    implementation: ToolImplementation | None = None
    """How the tool is implemented. Defaults to none."""
    discovered: DiscoveredTools | None = None
    """For mcp tools: what the server offers. Defaults to none."""
    conditions: list[Condition] = list_map("type", max_items=16)
    """Ready, and for mcp tools Discovered. Defaults to none."""


class AgentTool(KubeResource):
    """One tool an agent may call."""

    name_rule: ClassVar[NameRule] = NameRule(
        TOOL_NAME_PATTERN,
        TOOL_NAME_MAX_CHARS,
        "a tool name models accept: a letter, then letters, digits, '-' or '_'",
    )

    kind: Literal["AgentTool"] = "AgentTool"
    spec: AgentToolSpec
    status: AgentToolStatus | None = None

    cel_rules = (
        Rule(
            cel=f"!has(self.spec.mcp) || size(self.metadata.name) <= {MCP_PREFIX_MAX_CHARS}",
            message=f"the name of an mcp AgentTool must have at most {MCP_PREFIX_MAX_CHARS} "
            "characters: it prefixes the name of each tool of the server",
            field_path=".metadata.name",
            check=lambda s: s.spec.mcp is None or len(s.metadata.name) <= MCP_PREFIX_MAX_CHARS,
        ),
    )
