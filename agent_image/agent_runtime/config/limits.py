"""The limits on names and identifiers, one constant each, shared by every layer that checks them.

The config schema, the HTTP API, the memory key space and the tools all refuse the same
values for the same reason, so each limit is stated here once. The operator reuses
`TOOL_NAME_PATTERN` for AgentTool names and the pool/namespace rules for identities.
Pure: no imports beyond the standard library.
"""

from __future__ import annotations

from typing import Final

KUBERNETES_NAMESPACE_MAX_CHARS: Final = 63
KUBERNETES_NAMESPACE_PATTERN: Final = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
"""A Kubernetes namespace: an RFC 1123 label."""

POOL_NAME_MAX_CHARS: Final = 63
POOL_NAME_PATTERN: Final = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
"""An AgentPool's name as the runtime accepts it: an RFC 1035 label (it names a Service)."""

TENANT_MAX_CHARS: Final = 128
TENANT_PATTERN: Final = rf"^[A-Za-z0-9][A-Za-z0-9_.:@-]{{0,{TENANT_MAX_CHARS - 1}}}$"
"""A memory tenant (a user, a customer): the scope memories and conversations are kept in."""

MEMORY_KEY_MAX_CHARS: Final = 512
"""The longest memory key (any characters; keys are percent-encoded in Redis)."""

CONVERSATION_ID_MAX_CHARS: Final = 256
"""The longest conversation id (any characters; percent-encoded in Redis)."""

IDEMPOTENCY_KEY_MAX_CHARS: Final = 256
"""The longest idempotency key of a task (any characters; percent-encoded in Redis)."""

TOOL_NAME_MAX_CHARS: Final = 64
TOOL_NAME_PATTERN: Final = rf"^[A-Za-z][A-Za-z0-9_-]{{0,{TOOL_NAME_MAX_CHARS - 1}}}$"
"""A tool name both OpenAI function calling and MCP accept (also the AgentTool name rule)."""

MCP_PREFIX_MAX_CHARS: Final = 31
MCP_PREFIX_PATTERN: Final = rf"^[A-Za-z][A-Za-z0-9_-]{{0,{MCP_PREFIX_MAX_CHARS - 1}}}$"
"""The prefix of the tools discovered from an MCP server (`{prefix}__{remote name}`)."""

ENV_VAR_PATTERN: Final = r"^[A-Za-z_][A-Za-z0-9_]*$"
"""An environment variable name (secrets are passed by the variable that holds them)."""
