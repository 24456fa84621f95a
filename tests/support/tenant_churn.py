"""Many distinct tenants through one runtime: what the RSS test and the benchmark drive.

Each tenant remembers one note (working, long-term and episodic memory), recalls it,
asks for it through the `recall` tool and a search, and (with `forget`) forgets it, all
over the HTTP API in-process (ASGI, no sockets), with a token bound to any tenant.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from agent_runtime.config import RuntimeConfig, parse_runtime_config
from agent_runtime.runtime import Runtime
from agent_runtime.server import create_app
from agent_runtime.tools.tool import CallContext

TOKEN = "churn-gateway-token-0123456789"


def churn_config(redis_url: str, workdir: Path) -> RuntimeConfig:
    tokens = workdir / "tokens.yaml"
    tokens.write_text(f"tokens: [{{name: gateway, token: {TOKEN}, tenant: '*'}}]\n")
    return parse_runtime_config(
        f"""
        pool: {{namespace: bench, name: tenants}}
        memory:
          redis: {{url: "{redis_url}"}}
          episodic: {{embedder: {{kind: hashing, dimensions: 64}}}}
          workingMemory: {{capacity: 16, maxConversations: 1000}}
        auth: {{tokensFile: "{tokens}"}}
        """
    )


@asynccontextmanager
async def serving(config: RuntimeConfig) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its runtime started, and a client that talks to it in-process."""
    app = create_app(config)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://runtime", headers=headers
        ) as client:
            yield client


async def one_tenant(client: httpx.AsyncClient, tenant: str, *, forget: bool) -> None:
    note = {"value": {"tenant": tenant, "likes": "tea"}, "importance": 0.9}
    answers = [
        await client.put(f"/v1/memory/{tenant}/note", json=note),
        await client.get(f"/v1/memory/{tenant}/note"),
        await client.post(
            "/v1/tools/recall/call", json={"arguments": {"key": "note"}, "tenant": tenant}
        ),
        await client.post(f"/v1/memory/{tenant}/search", json={"query": "tea", "k": 1}),
    ]
    if forget:
        answers.append(await client.delete(f"/v1/memory/{tenant}/note"))
    for answer in answers:
        assert answer.status_code == 200, answer.text


async def churn(
    client: httpx.AsyncClient, first: int, count: int, *, forget: bool, concurrency: int = 16
) -> None:
    """Tenants `t{first}` .. `t{first + count - 1}`, `concurrency` at a time."""
    for start in range(first, first + count, concurrency):
        stop = min(start + concurrency, first + count)
        await asyncio.gather(
            *(one_tenant(client, f"t{i}", forget=forget) for i in range(start, stop))
        )


def rss_bytes() -> int:
    """This process's resident set size (Linux), after a full collection."""
    gc.collect()
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


async def one_tenant_direct(runtime: Runtime, tenant: str, *, forget: bool) -> None:
    """The same work as `one_tenant`, below HTTP: the hierarchy and the tool registry."""
    memory = runtime.memory
    await memory.remember("note", {"tenant": tenant, "likes": "tea"}, tenant=tenant, importance=0.9)
    found = await memory.recall("note", tenant=tenant)
    assert found is not None
    context = CallContext(tenant=tenant)
    result = await runtime.registry.call("recall", {"key": "note"}, context=context)
    assert result.value["found"] is True
    assert await memory.search("tea", tenant=tenant, k=1)
    if forget:
        assert "longTerm" in await memory.forget("note", tenant=tenant)


async def churn_direct(
    runtime: Runtime, first: int, count: int, *, forget: bool, concurrency: int = 32
) -> None:
    """`churn` below HTTP (about three times faster: what the 50,000-tenant test runs)."""
    for start in range(first, first + count, concurrency):
        stop = min(start + concurrency, first + count)
        await asyncio.gather(
            *(one_tenant_direct(runtime, f"t{i}", forget=forget) for i in range(start, stop))
        )
