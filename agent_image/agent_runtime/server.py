"""The runtime's HTTP API (FastAPI).

    GET    /healthz                          liveness
    GET    /readyz                           readiness, with the memory backend's state
    GET    /metrics                          Prometheus
    GET    /v1/tools?format=openai|mcp       the tool definitions
    POST   /v1/tools/{name}/call             {"arguments": {...}, "tenant": "...",
                                              "conversationId": "..." (optional)}
    GET    /v1/breakers                      every circuit breaker's state
    POST   /v1/chat, /v1/chat/completions, GET /v1/conversations/{id}[/events]
                                             turns and conversations (routes/chat.py)
    POST   /v1/drain                         stop taking turns, finish (routes/lifecycle.py)
    PUT    /v1/memory/{tenant}/{key}         {"value": ..., "importance": 0.5, "metadata": {}}
    GET    /v1/memory/{tenant}/{key}         which tier answered, and the value
    DELETE /v1/memory/{tenant}/{key}
    POST   /v1/memory/{tenant}/search        {"query": "...", "k": 5}

The tenant (a user, a customer) scopes memory and is passed to every tool call in its
`CallContext`; it is always stated by the caller, never defaulted.

Errors are JSON `{"error": {"type", "message", ...}}` with the status `api_errors` picks.
Readiness stays 200 while Redis is down: the pod still serves from working memory, and
taking every replica out of its Service at once would turn a degraded pool into a dead one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Literal

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from pydantic import BaseModel, ConfigDict, Field, JsonValue
from pydantic.alias_generators import to_camel

from agent_runtime.agent.admission import AtCapacityError, DrainingError
from agent_runtime.agent.model import ModelUnavailableError
from agent_runtime.api_errors import InvalidRequestError, NoAgentError, error_response
from agent_runtime.config import RuntimeConfig
from agent_runtime.config.limits import CONVERSATION_ID_MAX_CHARS, TENANT_PATTERN
from agent_runtime.memory.errors import AgentMemoryError
from agent_runtime.memory.hierarchy import MemoryHierarchy
from agent_runtime.resilience.breaker import CircuitOpenError
from agent_runtime.resilience.fallback import FallbackExhaustedError
from agent_runtime.resilience.limits import BulkheadFullError, RateLimitedError
from agent_runtime.routes import chat, lifecycle
from agent_runtime.runtime import Runtime
from agent_runtime.tools.errors import ToolError, ToolNotFoundError
from agent_runtime.tools.tool import CallContext


class _Body(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class ToolCallRequest(_Body):
    arguments: dict[str, JsonValue] = Field(default_factory=dict)
    tenant: str = Field(pattern=TENANT_PATTERN)
    conversation_id: str | None = Field(
        default=None, min_length=1, max_length=CONVERSATION_ID_MAX_CHARS
    )


class RememberRequest(_Body):
    value: JsonValue
    importance: float = Field(default=0.5, ge=0, le=1)
    metadata: dict[str, JsonValue] = Field(default_factory=dict)


class SearchRequest(_Body):
    query: str = Field(min_length=1, max_length=4096)
    k: int = Field(default=5, ge=1, le=50)


_HANDLED: tuple[type[Exception], ...] = (
    ToolError,
    ToolNotFoundError,
    CircuitOpenError,
    BulkheadFullError,
    RateLimitedError,
    FallbackExhaustedError,
    AgentMemoryError,
    AtCapacityError,
    DrainingError,
    ModelUnavailableError,
    NoAgentError,
    InvalidRequestError,
)


def create_app(
    config: RuntimeConfig,
    *,
    start: Callable[[RuntimeConfig], Awaitable[Runtime]] = Runtime.start,
) -> FastAPI:
    """Build the application; the runtime starts with the server and stops with it."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.runtime = await start(config)
        try:
            yield
        finally:
            # SIGTERM lands here once uvicorn has finished the requests in flight; turns
            # whose clients went away still run as tasks: let them end first.
            await app.state.runtime.drain(config.agent.limits.turn_timeout_seconds)
            await app.state.runtime.stop()

    app = FastAPI(title="Agentpool agent runtime", version="0.1.0", lifespan=lifespan)

    def runtime(request: Request) -> Runtime:
        found: Runtime = request.app.state.runtime
        return found

    def memory(request: Request) -> MemoryHierarchy:
        return runtime(request).memory

    async def handled(request: Request, exc: Exception) -> JSONResponse:
        status, body, headers = error_response(exc)
        return JSONResponse(body, status_code=status, headers=headers)

    for kind in _HANDLED:
        app.add_exception_handler(kind, handled)

    async def invalid(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        issues = [
            {
                "path": ".".join(str(p) for p in error.get("loc", ())),
                "rule": error.get("type", ""),
                "message": error.get("msg", ""),
            }
            for error in exc.errors()
        ]
        message = "; ".join(f"{i['path']}: {i['message']}" for i in issues)
        body = {"error": {"type": "InvalidRequest", "message": message, "issues": issues}}
        return JSONResponse(body, status_code=422)

    app.add_exception_handler(RequestValidationError, invalid)
    app.state.turns = set()
    app.include_router(chat.router)
    app.include_router(lifecycle.router)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz(request: Request) -> JSONResponse:
        live = runtime(request)
        status = live.memory_status()
        model = [b.as_dict() for b in live.model.breakers()] if live.model is not None else []
        model_down = bool(model) and all(b["state"] == "open" for b in model)
        body = {
            "status": "draining"
            if live.admission.draining
            else "degraded"
            if status.degraded or model_down
            else "ready",
            "pool": config.pool.model_dump(mode="json", by_alias=True),
            "memory": status.model_dump(mode="json", by_alias=True, exclude_none=True),
            "model": {"breakers": model},
            "turns": {"active": live.admission.active, "capacity": live.admission.capacity},
        }
        # Draining is the one unready state: degraded pods still serve what they can.
        return JSONResponse(body, status_code=503 if live.admission.draining else 200)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/tools")
    async def list_tools(
        request: Request, format: Literal["openai", "mcp"] = "mcp"
    ) -> dict[str, Any]:
        registry = runtime(request).registry
        tools = registry.openai_tools() if format == "openai" else registry.mcp_tools()
        return {"tools": tools}

    @app.post("/v1/tools/{name}/call")
    async def call_tool(name: str, body: ToolCallRequest, request: Request) -> dict[str, Any]:
        context = CallContext(tenant=body.tenant, conversation_id=body.conversation_id)
        result = await runtime(request).registry.call(name, body.arguments, context=context)
        return result.as_dict()

    @app.get("/v1/breakers")
    async def breakers(request: Request) -> dict[str, Any]:
        return {"breakers": [b.as_dict() for b in runtime(request).registry.breakers()]}

    @app.put("/v1/memory/{tenant}/{key}")
    async def remember(
        tenant: str, key: str, body: RememberRequest, request: Request
    ) -> dict[str, Any]:
        tiers = await memory(request).remember(
            key, body.value, tenant=tenant, importance=body.importance, metadata=body.metadata
        )
        return {"key": key, "tenant": tenant, "tiers": list(tiers)}

    @app.get("/v1/memory/{tenant}/{key}")
    async def recall(tenant: str, key: str, request: Request) -> JSONResponse:
        found = await memory(request).recall(key, tenant=tenant)
        if found is None:
            return JSONResponse(
                {"error": {"type": "NotFound", "message": f"nothing remembered under {key!r}"}},
                status_code=404,
            )
        return JSONResponse(found.model_dump(mode="json"))

    @app.delete("/v1/memory/{tenant}/{key}")
    async def forget(tenant: str, key: str, request: Request) -> dict[str, Any]:
        tiers = await memory(request).forget(key, tenant=tenant)
        return {"key": key, "tenant": tenant, "forgotten": list(tiers)}

    @app.post("/v1/memory/{tenant}/search")
    async def search(tenant: str, body: SearchRequest, request: Request) -> dict[str, Any]:
        hits = await memory(request).search(body.query, tenant=tenant, k=body.k)
        return {"results": [hit.model_dump(mode="json") for hit in hits]}

    return app
