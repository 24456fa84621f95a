"""Pool-as-tool: ask another agent pool, through its HTTP chat API (multi-agent work).

The contract (served by every pool's runtime, `agent_runtime.server`):

    POST {baseUrl}/v1/chat
    Content-Type: application/json
    {"message": "<text>", "conversationId": "<id>" | null, "tenant": "<tenant>"}

    200 OK
    {"reply": "<text>", "conversationId": "<id>", ...}

`conversationId: null` starts a conversation; passing the returned id continues it, on
any replica of that pool. `tenant` is the tenant of the call being served (from its
`CallContext`), so the called pool keeps its memory for the same tenant. The calling
pool authenticates as itself: with `tokenFile` set (a projected ServiceAccount token
whose audience is the called pool's), every request carries `Authorization: Bearer
<token>`, read from the file on each call because the kubelet rotates it; the called
pool allows that ServiceAccount for any tenant (`auth.serviceAccounts.allow`). Extra
response fields are passed through to the caller. A response without a string `reply`
is an error of kind `execution`; one too deep to decode is `responseTooLarge`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from agent_runtime.config.tools import AgentImplementation
from agent_runtime.tools.errors import ToolError
from agent_runtime.tools.http import decode_body, resolve_headers, send
from agent_runtime.tools.tool import CallContext

CHAT_PATH = "/v1/chat"

AGENT_PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "message": {"type": "string", "minLength": 1, "description": "What to ask the agent."},
        "conversationId": {
            "type": ["string", "null"],
            "description": "Continue this conversation; omit to start one.",
        },
    },
    "required": ["message"],
    "additionalProperties": False,
}
"""The default parameters of an agent tool."""


class PoolTool:
    """The implementation of one `agent` tool definition."""

    def __init__(
        self,
        name: str,
        spec: AgentImplementation,
        client: httpx.AsyncClient,
        *,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.spec = spec
        self.url = spec.base_url() + CHAT_PATH
        self._client = client
        self._headers = resolve_headers(name, spec.headers, environ)

    def _token(self) -> str:
        assert self.spec.token_file is not None
        try:
            token = self.spec.token_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ToolError(
                self.name, f"cannot read this pool's token: {type(exc).__name__}"
            ) from None
        if not token:
            raise ToolError(self.name, "this pool's token file is empty")
        return token

    async def __call__(self, arguments: dict[str, Any], context: CallContext) -> Any:
        payload = {
            "message": arguments["message"],
            "conversationId": arguments.get("conversationId"),
            "tenant": context.tenant,
        }
        headers = dict(self._headers)
        if self.spec.token_file is not None:
            headers["Authorization"] = f"Bearer {self._token()}"
        request = self._client.build_request("POST", self.url, json=payload, headers=headers)
        response, body = await send(
            self.name,
            self._client,
            request,
            timeout_seconds=self.spec.timeout_seconds,
            max_bytes=self.spec.max_response_bytes,
        )
        try:
            answer = decode_body(response, body)
        except RecursionError:
            raise ToolError(
                self.name, "the answer is nested too deeply to decode", kind="responseTooLarge"
            ) from None
        except ValueError:
            answer = None
        if not isinstance(answer, dict) or not isinstance(answer.get("reply"), str):
            raise ToolError(self.name, f"{self.url} did not answer with a JSON {{'reply': str}}")
        return answer
