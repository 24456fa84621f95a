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

A pool named by `pool` (not `url`) that has no ready replica (the connection is refused,
or a proxy in front answers 503 with no runtime's error body) may be scaled to zero: the
call asks for it to be woken (`tools/wake.py`), retries with backoff until its
deadline (`timeoutSeconds`), and withdraws the request when it ends. A 503 from one of
the pool's replicas (at capacity, draining) is the pool's answer and is not retried here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx

from agent_runtime.config.identity import PoolIdentity
from agent_runtime.config.tools import AgentImplementation, RetrySettings
from agent_runtime.resilience.clock import Clock, Sleep, monotonic, sleep
from agent_runtime.resilience.retry import call_with_retry
from agent_runtime.tools.errors import ToolConnectError, ToolError, ToolHttpStatusError
from agent_runtime.tools.http import decode_body, resolve_headers, send
from agent_runtime.tools.tool import CallContext
from agent_runtime.tools.wake import WakeRequests

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

WAIT_FOR_WAKE = RetrySettings(
    max_attempts=20,
    initial_backoff_seconds=0.5,
    multiplier=1.5,
    max_backoff_seconds=5.0,
    jitter_seconds=0.25,
)
"""How a call retries a pool with no ready replica: a woken pool needs a tick of the
autoscaler (1 s) and a pod's start; the call's deadline stops it first (20 attempts at
these delays take about 80 s)."""


def no_ready_replica(error: BaseException) -> bool:
    """Whether `error` says that nothing serves the pool now (it may be at zero)."""
    if isinstance(error, ToolConnectError):
        return True
    if isinstance(error, ToolHttpStatusError) and error.status == 503:
        return not _runtime_error(error.body)  # a proxy's "no endpoints", not a replica's
    return False


def _runtime_error(body: str) -> bool:
    """Whether `body` is the runtime's one error shape (`agent_runtime.api_errors`)."""
    try:
        decoded = json.loads(body)
    except ValueError:
        return False
    return isinstance(decoded, dict) and isinstance(decoded.get("error"), dict)


class PoolTool:
    """The implementation of one `agent` tool definition."""

    def __init__(
        self,
        name: str,
        spec: AgentImplementation,
        client: httpx.AsyncClient,
        *,
        environ: Mapping[str, str] | None = None,
        wake: WakeRequests | None = None,
        namespace: str | None = None,
        clock: Clock = monotonic,
        sleep: Sleep = sleep,
    ) -> None:
        """`wake` (this replica's Redis) and `namespace` (this pod's, for a `pool` in no
        namespace of its own): without them, a pool at zero is not woken."""
        self.name = name
        self.spec = spec
        self.url = spec.base_url() + CHAT_PATH
        self._client = client
        self._headers = resolve_headers(name, spec.headers, environ)
        self._wake = wake
        target_namespace = spec.namespace or namespace
        self.target: PoolIdentity | None = None
        if spec.pool is not None and target_namespace is not None:
            self.target = PoolIdentity(namespace=target_namespace, name=spec.pool)
        self._clock = clock
        self._sleep = sleep

    async def _ask_to_wake(self, deadline: float) -> str | None:
        assert self._wake is not None
        assert self.target is not None
        return await self._wake.register(self.target, deadline - self._clock())

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
        deadline = self._clock() + self.spec.timeout_seconds
        member: str | None = None
        wake, target = self._wake, self.target

        async def attempt() -> tuple[httpx.Response, bytes]:
            nonlocal member
            headers = dict(self._headers)
            if self.spec.token_file is not None:
                headers["Authorization"] = f"Bearer {self._token()}"
            request = self._client.build_request("POST", self.url, json=payload, headers=headers)
            try:
                return await send(
                    self.name,
                    self._client,
                    request,
                    timeout_seconds=max(deadline - self._clock(), 0.001),
                    max_bytes=self.spec.max_response_bytes,
                )
            except ToolError as exc:
                waiting = wake is not None and target is not None and member is None
                if waiting and no_ready_replica(exc):  # the pool may be at zero: wake it
                    member = await self._ask_to_wake(deadline)
                raise

        if wake is None or target is None:
            response, body = await attempt()
        else:
            try:
                response, body = await call_with_retry(
                    attempt,
                    WAIT_FOR_WAKE,
                    should_retry=no_ready_replica,
                    deadline=deadline,
                    clock=self._clock,
                    sleep=self._sleep,
                )
            finally:
                if member is not None:
                    await wake.withdraw(target, member)
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
