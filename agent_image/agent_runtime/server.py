"""The runtime's HTTP API (FastAPI).

    GET    /healthz                          liveness
    GET    /readyz                           readiness, with the memory backend's state
    GET    /metrics                          Prometheus
    GET    /v1/tools?format=openai|mcp       the tool definitions
    POST   /v1/tools/{name}/call             {"arguments": {...}, "tenant": "..." (optional),
                                              "conversationId": "..." (optional)}
    GET    /v1/breakers                      every circuit breaker's state
    POST   /v1/chat, /v1/chat/completions, GET /v1/conversations/{id}[/events],
    GET|POST /v1/conversations/{id}/approvals
                                             turns, conversations, held tool calls
                                             (routes/chat.py)
    POST   /v1/drain                         stop taking turns, finish (routes/lifecycle.py)
    PUT    /v1/memory/{tenant}/{key}         {"value": ..., "importance": 0.5, "metadata": {}}
    GET    /v1/memory/{tenant}/{key}         which tier answered, and the value
    DELETE /v1/memory/{tenant}/{key}
    POST   /v1/memory/{tenant}/search        {"query": "...", "k": 5}
    POST   /v1/tasks, GET /v1/tasks/{id}     durable tasks (routes/tasks.py)

Every route but the probes (`/healthz`, `/readyz`, `/metrics`) needs credentials
(`agent_runtime.access`). The tenant (a user, a customer) scopes memory and is passed to
every tool call in its `CallContext`: it is the one the credentials carry; a tenant named
in a body or path that they do not allow is 403, and a caller trusted for any tenant
must name one (422).

Errors, FastAPI's own validation errors included, are JSON `{"error": {"type",
"message", ...}}` with the status `api_errors` picks; `edge.RequestGuard` refuses
oversized, slow and unkeepable bodies before any route runs.
Readiness stays 200 while Redis is down, with the outage in its body: what needs Redis
(chat turns, tasks, conversations, long-term memory) answers 503, what does not (tool
calls, memory search from working memory) still serves, and taking every
replica out of its Service at once would turn a degraded pool into a dead one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

import structlog
from fastapi import FastAPI, Path, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from pydantic import BaseModel, ConfigDict, Field, JsonValue
from pydantic.alias_generators import to_camel
from starlette.exceptions import HTTPException as StarletteHTTPException

from agent_runtime.access import CallerDep, authenticator, install
from agent_runtime.api_errors import HANDLED, error_body, error_response, openapi_responses
from agent_runtime.config import RuntimeConfig
from agent_runtime.config.limits import (
    CONVERSATION_ID_MAX_CHARS,
    MEMORY_KEY_MAX_CHARS,
    TENANT_MAX_CHARS,
    TENANT_PATTERN,
)
from agent_runtime.edge import EdgeLimits, RequestGuard
from agent_runtime.memory.hierarchy import MemoryHierarchy
from agent_runtime.request_metrics import RequestMetrics
from agent_runtime.routes import chat, lifecycle
from agent_runtime.routes.tasks import router as tasks_router
from agent_runtime.runtime import Runtime
from agent_runtime.tools.tool import CallContext

log = structlog.get_logger(__name__)


class _Body(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class ToolCallRequest(_Body):
    arguments: dict[str, JsonValue] = Field(default_factory=dict)
    tenant: str | None = Field(
        default=None,
        pattern=TENANT_PATTERN,
        description="The tenant to act in; may be left out when the credentials carry one.",
    )
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


TenantPath = Annotated[
    str, Path(pattern=TENANT_PATTERN, max_length=TENANT_MAX_CHARS, description="The tenant.")
]
KeyPath = Annotated[
    str, Path(min_length=1, max_length=MEMORY_KEY_MAX_CHARS, description="The memory key.")
]


def create_app(
    config: RuntimeConfig,
    *,
    start: Callable[[RuntimeConfig], Awaitable[Runtime]] = Runtime.start,
    limits: EdgeLimits | None = None,
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
            await authenticator_.aclose()

    app = FastAPI(title="Agentpool agent runtime", version="0.1.0", lifespan=lifespan)
    authenticator_ = install(app, config.auth)
    app.add_middleware(RequestGuard, limits=limits or EdgeLimits())
    app.add_middleware(RequestMetrics)  # outermost: the guard's refusals are counted too

    def runtime(request: Request) -> Runtime:
        found: Runtime = request.app.state.runtime
        return found

    def memory(request: Request) -> MemoryHierarchy:
        return runtime(request).memory

    async def handled(request: Request, exc: Exception) -> JSONResponse:
        status, body, headers = error_response(exc)
        if status >= 500:
            log.warning(
                "request failed",
                path=request.url.path,
                status=status,
                error=type(exc).__name__,
                detail=str(exc)[:500],
                exc_info=status == 500,
            )
        return JSONResponse(body, status_code=status, headers=headers)

    async def invalid_request(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        issues = [
            {
                "path": "$." + ".".join(str(part) for part in err.get("loc", ())),
                "rule": str(err.get("type", "invalid")),
                "message": str(err.get("msg", "invalid")),
            }
            for err in exc.errors()
        ]
        summary = "; ".join(f"{i['path']}: {i['message']}" for i in issues[:5])
        body = error_body("RequestValidationError", f"invalid request: {summary}", issues=issues)
        return JSONResponse(body, status_code=422)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        kind = {404: "NotFound", 405: "MethodNotAllowed"}.get(exc.status_code, "HTTPError")
        return JSONResponse(
            error_body(kind, str(exc.detail)),
            status_code=exc.status_code,
            headers=dict(exc.headers or {}),
        )

    for kind in HANDLED:
        app.add_exception_handler(kind, handled)
    app.add_exception_handler(Exception, handled)  # the last resort: a 500 in the one shape
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.include_router(tasks_router)
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
        draining = live.admission.draining
        body = {
            "status": "draining"
            if draining
            else "degraded"
            if status.degraded or model_down
            else "ready",
            "pool": config.pool.model_dump(mode="json", by_alias=True),
            "memory": status.model_dump(mode="json", by_alias=True, exclude_none=True),
            "auth": authenticator(request).describe(),
            "model": {"breakers": model},
            "turns": {"active": live.admission.active, "capacity": live.admission.capacity},
            "tasks": live.tasks_status(),
        }
        # Draining is the one unready state: degraded pods still serve what they can.
        return JSONResponse(body, status_code=503 if draining else 200)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/tools", responses=openapi_responses())
    async def list_tools(
        request: Request, _caller: CallerDep, format: Literal["openai", "mcp"] = "mcp"
    ) -> dict[str, Any]:
        registry = runtime(request).registry
        tools = registry.openai_tools() if format == "openai" else registry.mcp_tools()
        return {"tools": tools}

    @app.post("/v1/tools/{name}/call", responses=openapi_responses(403, 404, 429, 502, 504))
    async def call_tool(
        name: Annotated[str, Path(max_length=256)],
        body: ToolCallRequest,
        request: Request,
        caller: CallerDep,
    ) -> dict[str, Any]:
        context = CallContext(
            tenant=caller.tenant(body.tenant), conversation_id=body.conversation_id
        )
        result = await runtime(request).registry.call(name, body.arguments, context=context)
        return result.as_dict()

    @app.get("/v1/breakers", responses=openapi_responses())
    async def breakers(request: Request, _caller: CallerDep) -> dict[str, Any]:
        return {"breakers": [b.as_dict() for b in runtime(request).registry.breakers()]}

    @app.put("/v1/memory/{tenant}/{key}", responses=openapi_responses(403, 502))
    async def remember(
        tenant: TenantPath, key: KeyPath, body: RememberRequest, request: Request, caller: CallerDep
    ) -> dict[str, Any]:
        tenant = caller.tenant(tenant)
        tiers = await memory(request).remember(
            key, body.value, tenant=tenant, importance=body.importance, metadata=body.metadata
        )
        return {"key": key, "tenant": tenant, "tiers": list(tiers)}

    @app.get("/v1/memory/{tenant}/{key}", responses=openapi_responses(403, 404, 502))
    async def recall(
        tenant: TenantPath, key: KeyPath, request: Request, caller: CallerDep
    ) -> JSONResponse:
        tenant = caller.tenant(tenant)
        found = await memory(request).recall(key, tenant=tenant)
        if found is None:
            return JSONResponse(
                error_body("NotFound", "nothing remembered under this key"), status_code=404
            )
        return JSONResponse(found.model_dump(mode="json"))

    @app.delete("/v1/memory/{tenant}/{key}", responses=openapi_responses(403, 502))
    async def forget(
        tenant: TenantPath, key: KeyPath, request: Request, caller: CallerDep
    ) -> dict[str, Any]:
        tenant = caller.tenant(tenant)
        tiers = await memory(request).forget(key, tenant=tenant)
        return {"key": key, "tenant": tenant, "forgotten": list(tiers)}

    @app.post("/v1/memory/{tenant}/search", responses=openapi_responses(403, 502))
    async def search(
        tenant: TenantPath, body: SearchRequest, request: Request, caller: CallerDep
    ) -> dict[str, Any]:
        tenant = caller.tenant(tenant)
        hits = await memory(request).search(body.query, tenant=tenant, k=body.k)
        return {"results": [hit.model_dump(mode="json") for hit in hits]}

    return app
