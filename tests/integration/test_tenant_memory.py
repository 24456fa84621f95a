"""Memory stays flat over any number of distinct tenants: a replica keeps per-tenant
bookkeeping (working memory scopes, vector indexes) only while the tenant has entries.

20,000 distinct tenants each remember, recall (directly and through the `recall` tool),
search and forget one note against a real Redis; the process's RSS after them is
compared with the RSS after a warm-up of 5,000 (allocator arenas, Redis connections and
caches reach their working size there). A leak of 400 bytes per tenant would show as
8 MiB. The 50,000-tenant figure is the benchmark's (`python -m benchmarks tenants`,
BENCH_TENANTS=50000): it takes minutes, too long for every `make test`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agent_runtime.logging_config import configure_logging
from agent_runtime.runtime import Runtime
from tests.support.tenant_churn import churn_config, churn_direct, rss_bytes

WARM_UP = 5_000
TENANTS = 20_000
ALLOWED_GROWTH = 8 * 1024 * 1024


@pytest.fixture
async def runtime(redis_url: str, tmp_path: Path) -> AsyncIterator[Runtime]:
    configure_logging("WARNING")  # 300,000 info lines would measure the log, not memory
    started = await Runtime.start(churn_config(redis_url, tmp_path))
    yield started
    await started.stop()
    configure_logging("INFO")


@pytest.mark.timeout(900)
async def test_rss_stays_flat_over_20000_distinct_tenants(runtime: Runtime) -> None:
    await churn_direct(runtime, 0, WARM_UP, forget=True)
    before = rss_bytes()
    await churn_direct(runtime, WARM_UP, TENANTS, forget=True)
    after = rss_bytes()
    print(f"RSS {before / 2**20:.1f} MiB -> {after / 2**20:.1f} MiB over {TENANTS} tenants")
    assert after - before < ALLOWED_GROWTH, f"grew {(after - before) / 2**20:.1f} MiB"
    assert runtime.memory.working.tenants() == 0
    assert runtime.memory.episodic is not None
    await runtime.memory.episodic.sync()  # the last forgets reach the index on the next sync
    assert runtime.memory.episodic._indexes == {}
