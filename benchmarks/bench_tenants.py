"""Memory per distinct tenant: RSS growth over many tenants that come and go, against
the same work with the tenants' entries kept (the baseline: what each tenant costs
while it has entries). Needs redis-server (`make redis`).

    .venv/bin/python -m benchmarks tenants
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path

import redis

from agent_runtime.logging_config import configure_logging
from agent_runtime.runtime import Runtime
from tests.support.redis_server import RedisServer
from tests.support.tenant_churn import churn_config, churn_direct, rss_bytes

TENANTS = int(os.environ.get("BENCH_TENANTS", "20000"))
WARM_UP = 2_000


async def _measure(url: str, *, forget: bool) -> tuple[float, float]:
    """(RSS growth in bytes per tenant, seconds per tenant) over TENANTS tenants."""
    runtime = await Runtime.start(churn_config(url, Path(tempfile.mkdtemp())))
    try:
        await churn_direct(runtime, 0, WARM_UP, forget=True)
        before = rss_bytes()
        started = time.perf_counter()
        await churn_direct(runtime, WARM_UP, TENANTS, forget=forget)
        elapsed = time.perf_counter() - started
        return (rss_bytes() - before) / TENANTS, elapsed / TENANTS
    finally:
        await runtime.stop()


def main() -> None:
    configure_logging("WARNING")
    server = RedisServer()
    server.start()
    try:
        released, released_time = asyncio.run(_measure(server.url, forget=True))
        with redis.Redis.from_url(server.url) as conn:
            conn.flushall()
        kept, kept_time = asyncio.run(_measure(server.url, forget=False))
    finally:
        server.cleanup()
    print(f"{TENANTS} distinct tenants, each: remember, recall, recall tool, search (+ forget)")
    print(f"  released (forget):  {released:8.1f} B RSS per tenant, {released_time * 1e3:.2f} ms")
    print(f"  kept (baseline):    {kept:8.1f} B RSS per tenant, {kept_time * 1e3:.2f} ms")
    ratio = released / kept if kept > 0 else float("nan")
    print(f"  released / kept:    {ratio:.3f}")
