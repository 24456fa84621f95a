"""HTTP and agent tools against real servers on loopback that fail, hang and recover."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from agent_runtime.config.tools import ToolsConfig
from agent_runtime.resilience import BreakerState, CircuitOpenError
from agent_runtime.tools.build import build_registry
from agent_runtime.tools.errors import (
    ToolError,
    ToolHttpStatusError,
    ToolResponseTooLargeError,
    ToolTimeoutError,
    ToolTransportError,
)
from agent_runtime.tools.registry import ToolRegistry
from tests.support.identity import CONTEXT
from tests.support.loopback import serve_asgi
from tests.support.redis_server import free_port
from tests.support.wait import async_wait_until


@dataclass
class Dependency:
    """What the fake dependency does next: answer, fail with 503, or hang."""

    mode: str = "ok"
    failures_left: int = 0
    hits: int = 0
    release: asyncio.Event = field(default_factory=asyncio.Event)


def dependency_app(dep: Dependency) -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item}")
    async def item(item: str, request: Request) -> Response:
        dep.hits += 1
        if dep.failures_left > 0:
            dep.failures_left -= 1
            return JSONResponse({"error": "busy"}, status_code=503)
        if dep.mode == "fail":
            return JSONResponse({"error": "down"}, status_code=503)
        if dep.mode == "hang":
            await dep.release.wait()
        if item == "missing":
            return JSONResponse({"error": "no such item"}, status_code=404)
        return JSONResponse(
            {
                "item": item,
                "q": request.query_params.get("q"),
                "auth": request.headers.get("authorization"),
            }
        )

    @app.get("/big")
    async def big(chunked: bool = False) -> Response:
        payload = b"x" * 50_000
        if chunked:

            async def chunks() -> AsyncIterator[bytes]:
                for _ in range(10):
                    yield payload[:5_000]

            return StreamingResponse(chunks(), media_type="text/plain")
        return Response(payload, media_type="text/plain")

    @app.get("/garbled")
    async def garbled() -> Response:
        return Response(b"{not json", media_type="application/json")

    @app.post("/v1/chat")
    async def chat(request: Request) -> Response:
        body = await request.json()
        if body["message"] == "break":
            return JSONResponse({"nothing": True})
        return JSONResponse(
            {
                "reply": f"you said {body['message']}",
                "conversationId": body["conversationId"] or "c-1",
                "askedFor": body["tenant"],
            }
        )

    return app


def serve(app: FastAPI) -> AbstractAsyncContextManager[str]:
    """Run `app` with uvicorn on a free loopback port, in this event loop."""
    return serve_asgi(app, lifespan="off")


@pytest.fixture
async def dependency() -> AsyncIterator[tuple[Dependency, str]]:
    dep = Dependency()
    async with serve(dependency_app(dep)) as url:
        yield dep, url
        dep.release.set()


def config(url: str, **resilience: Any) -> ToolsConfig:
    return ToolsConfig.model_validate(
        {
            "definitions": [
                {
                    "name": "item",
                    "parameters": {
                        "type": "object",
                        "properties": {"id": {"type": "string"}, "q": {"type": "string"}},
                        "required": ["id"],
                    },
                    "hints": {"readOnly": True},
                    "http": {
                        "url": f"{url}/items/{{id}}",
                        "method": "GET",
                        "headers": {"Authorization": {"valueFrom": {"env": "ITEM_TOKEN"}}},
                        "timeoutSeconds": 0.3,
                    },
                    "cache": {"enabled": False},
                },
                {
                    "name": "big",
                    "parameters": {
                        "type": "object",
                        "properties": {"chunked": {"type": "boolean"}},
                    },
                    "http": {"url": f"{url}/big", "method": "GET", "maxResponseBytes": 10_000},
                },
                {"name": "peer", "agent": {"url": url}},
                {
                    "name": "garbled",
                    "parameters": {"type": "object"},
                    "http": {"url": f"{url}/garbled", "method": "GET"},
                },
            ],
            "resilience": {
                "retry": {"initialBackoffSeconds": 0.01, "jitterSeconds": 0.01},
                **resilience,
            },
        }
    )


@asynccontextmanager
async def registry_for(url: str, **resilience: Any) -> AsyncIterator[ToolRegistry]:
    registry = await build_registry(
        config(url, **resilience), environ={"ITEM_TOKEN": "Bearer s3cret"}
    )
    try:
        yield registry
    finally:
        await registry.aclose()


async def test_a_get_fills_the_url_query_and_secret_header(
    dependency: tuple[Dependency, str],
) -> None:
    _, url = dependency
    async with registry_for(url) as registry:
        result = await registry.call("item", {"id": "a b?c", "q": "x&y"}, context=CONTEXT)
    assert result.value == {"item": "a b?c", "q": "x&y", "auth": "Bearer s3cret"}


async def test_transient_failures_are_retried_until_it_recovers(
    dependency: tuple[Dependency, str],
) -> None:
    dep, url = dependency
    dep.failures_left = 2
    async with registry_for(url) as registry:
        result = await registry.call("item", {"id": "1"}, context=CONTEXT)
    assert (result.attempts, dep.hits) == (3, 3)


async def test_client_errors_are_reported_not_retried(dependency: tuple[Dependency, str]) -> None:
    dep, url = dependency
    async with registry_for(url) as registry:
        with pytest.raises(ToolHttpStatusError, match="HTTP 404") as caught:
            await registry.call("item", {"id": "missing"}, context=CONTEXT)
    assert caught.value.kind == "client"
    assert dep.hits == 1


async def test_a_hanging_dependency_times_out_trips_the_breaker_and_recovers(
    dependency: tuple[Dependency, str],
) -> None:
    dep, url = dependency
    dep.mode = "hang"
    breaker = {
        "minimumCalls": 2,
        "windowSize": 2,
        "waitDurationInOpenSeconds": 0.3,
        "permittedCallsInHalfOpen": 1,
    }
    async with registry_for(url, circuitBreaker=breaker, retry={"enabled": False}) as registry:
        for _ in range(2):
            with pytest.raises(ToolTimeoutError, match=r"timed out after 0\.3s"):
                await registry.call("item", {"id": "1"}, context=CONTEXT)
        hits = dep.hits
        with pytest.raises(CircuitOpenError):
            await registry.call("item", {"id": "1"}, context=CONTEXT)
        assert dep.hits == hits  # refused without touching the dependency
        dep.mode = "ok"
        dep.release.set()

        async def recovered() -> bool:
            try:
                await registry.call("item", {"id": "1"}, context=CONTEXT)
            except CircuitOpenError:
                return False
            return True

        await async_wait_until(recovered, timeout=5, what="the breaker to let a trial through")
        assert registry.breakers()[0].state is BreakerState.CLOSED


async def test_a_dead_dependency_is_a_transport_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    async with registry_for(url, retry={"enabled": False}) as registry:
        with pytest.raises(ToolTransportError) as caught:
            await registry.call("item", {"id": "1"}, context=CONTEXT)
    assert caught.value.kind == "transport"


@pytest.mark.parametrize("chunked", [False, True])
async def test_oversized_responses_are_cut_off(
    dependency: tuple[Dependency, str], chunked: bool
) -> None:
    _, url = dependency
    async with registry_for(url) as registry:
        with pytest.raises(ToolResponseTooLargeError, match="larger than 10000 bytes"):
            await registry.call("big", {"chunked": chunked}, context=CONTEXT)


async def test_a_body_that_lies_about_being_json_is_a_server_error(
    dependency: tuple[Dependency, str],
) -> None:
    _, url = dependency
    async with registry_for(url, retry={"enabled": False}) as registry:
        with pytest.raises(ToolError, match="not valid JSON") as caught:
            await registry.call("garbled", {}, context=CONTEXT)
    assert caught.value.kind == "server"


async def test_another_pool_answers_through_its_chat_api(
    dependency: tuple[Dependency, str],
) -> None:
    _, url = dependency
    async with registry_for(url) as registry:
        first = await registry.call("peer", {"message": "hello"}, context=CONTEXT)
        # The called pool is told which tenant the call is for.
        expected = {"reply": "you said hello", "conversationId": "c-1", "askedFor": "tests"}
        assert first.value == expected
        again = await registry.call(
            "peer", {"message": "more", "conversationId": "c-1"}, context=CONTEXT
        )
        assert again.value["conversationId"] == "c-1"
        with pytest.raises(ToolError, match=r"did not answer with a JSON \{'reply': str\}"):
            await registry.call("peer", {"message": "break"}, context=CONTEXT)


async def test_a_missing_secret_is_a_clear_start_up_error() -> None:
    with pytest.raises(Exception, match="'ITEM_TOKEN', which is not set"):
        await build_registry(config("http://127.0.0.1:1"), environ={})
