"""Serve an ASGI app with uvicorn on a loopback port, inside the test's event loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

import uvicorn

from tests.support.redis_server import free_port
from tests.support.wait import async_wait_until


@asynccontextmanager
async def serve_asgi(
    app: Any, port: int | None = None, *, lifespan: Literal["on", "off", "auto"] = "auto"
) -> AsyncIterator[str]:
    """Run `app` on 127.0.0.1 (a free port unless given); yield its base URL."""
    port = port or free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan=lifespan,
            timeout_graceful_shutdown=1,
        )
    )
    task = asyncio.create_task(server.serve())

    async def started() -> bool:
        if task.done():  # failed to bind or to start: say why instead of timing out
            task.result()
        return server.started

    await async_wait_until(started, timeout=10, what=f"uvicorn on 127.0.0.1:{port}")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
