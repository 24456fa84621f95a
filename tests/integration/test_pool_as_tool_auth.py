"""A pool calls another pool as a tool with its own identity.

The called side is a chat route written the way the runtime's routes are (the
`agent_runtime.access` dependency, `caller.tenant(...)`), served by uvicorn on
loopback; the calling side is a real `PoolTool` built from config with `tokenFile`
(what the operator mounts as a projected ServiceAccount token). The token file is
re-read on every call, as the kubelet rotates it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from agent_runtime.access import CallerDep, install
from agent_runtime.api_errors import HANDLED, error_response
from agent_runtime.config.auth import AuthConfig
from agent_runtime.config.tools import ToolsConfig
from agent_runtime.tools.build import build_registry
from agent_runtime.tools.errors import ToolError, ToolHttpStatusError
from agent_runtime.tools.tool import CallContext
from tests.support.loopback import serve_asgi

CALLER_TOKEN = "pool-a-projected-token-0123456789"
ROTATED_TOKEN = "pool-a-rotated-token-9876543210"
TENANT_TOKEN = "acme-only-token-0123456789"


class ChatRequest(BaseModel):
    message: str
    conversationId: str | None = None  # noqa: N815 - the wire name
    tenant: str | None = None


def called_pool(tokens_file: Path) -> FastAPI:
    app = FastAPI()
    install(app, AuthConfig(tokens_file=tokens_file))

    async def handled(request: Request, exc: Exception) -> JSONResponse:
        status, body, headers = error_response(exc)
        return JSONResponse(body, status_code=status, headers=headers)

    for kind in HANDLED:
        app.add_exception_handler(kind, handled)

    @app.post("/v1/chat")
    async def chat(body: ChatRequest, caller: CallerDep) -> dict[str, Any]:
        tenant = caller.tenant(body.tenant)
        return {"reply": f"hi {tenant}", "conversationId": "c-1", "caller": caller.subject}

    return app


@pytest.fixture
def tokens_file(tmp_path: Path) -> Path:
    path = tmp_path / "tokens.yaml"
    path.write_text(
        "tokens:\n"
        f"  - {{name: pool-a, token: {CALLER_TOKEN}, tenant: '*'}}\n"
        f"  - {{name: pool-a-next, token: {ROTATED_TOKEN}, tenant: '*'}}\n"
        f"  - {{name: acme-app, token: {TENANT_TOKEN}, tenant: acme}}\n"
    )
    return path


@pytest.fixture
async def pool_b(tokens_file: Path) -> AsyncIterator[str]:
    async with serve_asgi(called_pool(tokens_file), lifespan="off") as url:
        yield url


async def _registry(url: str, token_file: Path | None) -> Any:
    agent: dict[str, Any] = {"url": url}
    if token_file is not None:
        agent["tokenFile"] = str(token_file)
    config = ToolsConfig.model_validate({"definitions": [{"name": "peer", "agent": agent}]})
    return await build_registry(config)


async def test_a_pool_calls_another_as_its_own_identity(pool_b: str, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(CALLER_TOKEN + "\n")
    registry = await _registry(pool_b, token_file)
    try:
        answer = await registry.call("peer", {"message": "x"}, context=CallContext("acme"))
        assert answer.value["reply"] == "hi acme"  # the tenant of the call being served
        assert answer.value["caller"] == "token:pool-a"
        token_file.write_text(ROTATED_TOKEN)  # the kubelet rotates the projected token
        again = await registry.call("peer", {"message": "x"}, context=CallContext("globex"))
        assert (again.value["reply"], again.value["caller"]) == ("hi globex", "token:pool-a-next")
    finally:
        await registry.aclose()


async def test_without_credentials_the_other_pool_refuses(pool_b: str) -> None:
    registry = await _registry(pool_b, None)
    try:
        with pytest.raises(ToolHttpStatusError) as refused:
            await registry.call("peer", {"message": "x"}, context=CallContext("acme"))
        assert refused.value.status == 401
    finally:
        await registry.aclose()


async def test_a_tenant_bound_token_cannot_act_for_another_tenant(
    pool_b: str, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TENANT_TOKEN)
    registry = await _registry(pool_b, token_file)
    try:
        ok = await registry.call("peer", {"message": "x"}, context=CallContext("acme"))
        assert ok.value["reply"] == "hi acme"
        with pytest.raises(ToolHttpStatusError) as refused:
            await registry.call("peer", {"message": "x"}, context=CallContext("globex"))
        assert refused.value.status == 403
    finally:
        await registry.aclose()


async def test_an_unreadable_token_file_is_a_clear_tool_error(pool_b: str, tmp_path: Path) -> None:
    registry = await _registry(pool_b, tmp_path / "absent")
    try:
        with pytest.raises(ToolError, match="cannot read this pool's token"):
            await registry.call("peer", {"message": "x"}, context=CallContext("acme"))
    finally:
        await registry.aclose()
