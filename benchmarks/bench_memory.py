"""Memory and conversation state: the tiers, episodic search at 100k, event log and replay.

Run: `.venv/bin/python -m benchmarks memory`. Needs `redis-server` (a throwaway one is
started on a loopback port, without persistence so the disk is not measured).
Each figure is printed with its baseline measured in the same run:

- working memory get/put        vs a plain dict
- long-term get                 vs a raw redis-py GET of the same bytes
- episodic search (100k x 384)  usearch HNSW vs exact numpy search, recall@10 of the
                                former against the latter, on clustered synthetic data
                                (1,000 gaussian clusters; real embeddings are clustered).
                                Uniform random unit vectors are not measured: they are
                                the worst case for any graph index (one trial run gave
                                recall@10 of 0.07 with these settings) and take minutes
                                to index.
- episodic search end to end    (sync + Redis fetch of the episodes) vs index only
- event append                  vs a raw XADD
- replay of 1,000 events        from the latest snapshot vs from the first event
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import time
from collections.abc import Awaitable, Callable

import numpy as np
from numpy.typing import NDArray
from redis.asyncio import Redis

from agent_runtime.config import PoolIdentity
from agent_runtime.config.memory import IndexSettings, RedisSettings
from agent_runtime.conversation.state import (
    Event,
    InputReceived,
    ModelCalled,
    ResponseGenerated,
    ToolCalled,
    ToolResultReceived,
    new_state,
)
from agent_runtime.conversation.store import ConversationStore
from agent_runtime.memory import (
    EpisodicMemory,
    HashingEmbedder,
    KeySpace,
    LongTermMemory,
    MemoryRecord,
    RedisHealth,
    WorkingMemory,
    create_redis,
)
from agent_runtime.memory.vector_index import VectorIndex

EPISODES = 100_000
DIMENSIONS = 384
QUERIES = 300
K = 10
BENCH_POOL = PoolIdentity(namespace="bench", name="bench")


def percentile(samples: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(samples), q))


def describe(name: str, samples_s: list[float]) -> tuple[float, float]:
    p50, p99 = percentile(samples_s, 50) * 1e6, percentile(samples_s, 99) * 1e6
    print(f"  {name:<44} p50 {p50:10.2f} us   p99 {p99:10.2f} us")
    return p50, p99


def ratio(label: str, subject: float, baseline: float) -> None:
    print(f"  -> {label}: {subject / baseline:.2f}x the baseline")


# --- working memory ----------------------------------------------------------------


def bench_working() -> None:
    print("working memory (capacity 10,000; 200,000 ops; median of 5 runs, min-max)")
    keys = [f"key-{i}" for i in range(20_000)]

    def run_lru() -> tuple[float, float]:
        memory: WorkingMemory[int] = WorkingMemory(10_000)
        start = time.perf_counter()
        for i, key in enumerate(keys * 10):
            memory.put(key, i)
        put = (time.perf_counter() - start) / (len(keys) * 10)
        start = time.perf_counter()
        for key in keys * 10:
            memory.get(key)
        get = (time.perf_counter() - start) / (len(keys) * 10)
        return put, get

    def run_dict() -> tuple[float, float]:
        table: dict[str, int] = {}
        start = time.perf_counter()
        for i, key in enumerate(keys * 10):
            table[key] = i
        put = (time.perf_counter() - start) / (len(keys) * 10)
        start = time.perf_counter()
        for key in keys * 10:
            table.get(key)
        get = (time.perf_counter() - start) / (len(keys) * 10)
        return put, get

    lru = [run_lru() for _ in range(5)]
    plain = [run_dict() for _ in range(5)]
    for index, op in enumerate(("put", "get")):
        ours = [r[index] * 1e9 for r in lru]
        base = [r[index] * 1e9 for r in plain]
        print(
            f"  {op}: WorkingMemory {statistics.median(ours):7.0f} ns "
            f"({min(ours):.0f}-{max(ours):.0f})   dict {statistics.median(base):5.0f} ns "
            f"({min(base):.0f}-{max(base):.0f})"
        )
        ratio(f"working {op}", statistics.median(ours), statistics.median(base))


# --- episodic search at 100k --------------------------------------------------------


def unit(rows: NDArray[np.float32]) -> NDArray[np.float32]:
    normalised: NDArray[np.float32] = (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(
        np.float32
    )
    return normalised


def clustered(
    rng: np.random.Generator, count: int, centers: NDArray[np.float32]
) -> NDArray[np.float32]:
    labels = rng.integers(0, len(centers), count)
    noise = rng.standard_normal((count, DIMENSIONS)).astype(np.float32)
    return unit(centers[labels] + 0.5 * noise)


def bench_search(name: str, data: NDArray[np.float32], queries: NDArray[np.float32]) -> None:
    settings = IndexSettings()
    index = VectorIndex(DIMENSIONS, settings)
    start = time.perf_counter()
    index.add(np.arange(len(data), dtype=np.uint64), data)
    build = time.perf_counter() - start
    print(
        f"episodic search, {len(data):,} x {DIMENSIONS} {name}; usearch {settings.dtype} "
        f"M={settings.connectivity} ef_add={settings.expansion_add} "
        f"ef_search={settings.expansion_search}; index build {build:.1f} s"
    )
    # Separate loops: the exact scan streams 150 MB and would evict the index's pages.
    approx_times, approx_hits = [], []
    for query in queries:
        start = time.perf_counter()
        approx_hits.append(index.search(query, K))
        approx_times.append(time.perf_counter() - start)
    exact_times, recalls = [], []
    for query, approx in zip(queries, approx_hits, strict=True):
        start = time.perf_counter()
        exact = index.exact_search(query, K)
        exact_times.append(time.perf_counter() - start)
        recalls.append(len({i for i, _ in approx} & {i for i, _ in exact}) / K)
    a50, a99 = describe("usearch (approximate)", approx_times)
    e50, _ = describe("numpy exact (baseline)", exact_times)
    print(
        f"  recall@{K} vs exact: mean {np.mean(recalls):.4f}, worst query {min(recalls):.1f}; "
        f"p99 {a99 / 1000:.2f} ms (goal < 5 ms)"
    )
    ratio("approximate p50", a50, e50)


# --- Redis-backed parts -------------------------------------------------------------


async def timed(operation: Callable[[], Awaitable[object]], count: int) -> list[float]:
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        await operation()
        samples.append(time.perf_counter() - start)
    return samples


async def bench_long_term(client: Redis, health: RedisHealth) -> None:
    print("long-term get on loopback Redis (2,000 gets of a 1 KB value)")
    keys = KeySpace("bench", BENCH_POOL)
    memory = LongTermMemory(client, keys, health)
    value = {"note": "x" * 1000, "tags": ["a", "b"], "n": 42}
    await memory.put(
        MemoryRecord(tenant="u", key="k", value=value, importance=0.5, created_at=time.time())
    )
    name = keys.long_term("u", "k")
    for _ in range(200):  # warm the connection pool
        await memory.get("u", "k")

    async def ours() -> object:
        return await memory.get("u", "k")

    async def raw() -> object:
        return await client.get(name)

    subject = describe("LongTermMemory.get (gate + JSON decode)", await timed(ours, 2000))
    baseline = describe("redis-py GET (baseline)", await timed(raw, 2000))
    ratio("long-term get p50", subject[0], baseline[0])


async def bench_episodic_end_to_end(client: Redis, health: RedisHealth) -> None:
    count = 5_000
    embedder = HashingEmbedder(DIMENSIONS)
    memory = EpisodicMemory(client, KeySpace("bench", BENCH_POOL), health, embedder)
    start = time.perf_counter()
    for i in range(count):
        await memory.add("u", f"episode {i}: user asked about order {i % 97} and item {i % 13}")
    adding = (time.perf_counter() - start) / count
    await memory.sync()
    query = (await embedder.embed(["user asked about order 12 and item 5"]))[0]
    print(
        f"episodic search end to end, {count:,} episodes in Redis (add: "
        f"{adding * 1e6:.0f} us/episode incl. embedding)"
    )

    async def full() -> object:
        return await memory.search_vector("u", query, K)

    subject = describe("EpisodicMemory.search (sync + fetch)", await timed(full, 500))
    index_only = []
    for _ in range(500):
        begin = time.perf_counter()
        await memory.search_vector("u", query, K, sync=False)
        index_only.append(time.perf_counter() - begin)
    baseline = describe("same without the sync round trip", index_only)
    ratio("with sync", subject[0], baseline[0])


def conversation_turns(turns: int) -> list[Event]:
    events: list[Event] = []
    for turn in range(turns):
        at = float(turn)
        events += [
            InputReceived(at=at, content=f"question {turn}: " + "words " * 20),
            ModelCalled(at=at, model="m", prompt_tokens=500, completion_tokens=40),
            ToolCalled(at=at, call_id=f"c{turn}", tool="search", arguments={"q": f"t{turn}"}),
            ToolResultReceived(at=at, call_id=f"c{turn}", output={"hits": [1, 2, 3]}),
            ResponseGenerated(at=at, content=f"answer {turn}: " + "text " * 30),
        ]
    return events


async def bench_state(client: Redis, health: RedisHealth) -> None:
    keys = KeySpace("bench", BENCH_POOL)
    store = ConversationStore(client, keys, health, snapshot_every=300)
    events = conversation_turns(200)
    state = new_state("bench-conv")
    samples = []
    for event in events:
        start = time.perf_counter()
        state = await store.append(state, event)
        samples.append(time.perf_counter() - start)
    print("event append (1,000 single-event appends; Lua version check + XADD; snapshot every 300)")
    subject = describe("ConversationStore.append", samples)

    async def raw() -> object:
        return await client.xadd("bench:raw", {"e": b"x" * 200})

    baseline = describe("raw XADD (baseline)", await timed(raw, 1000))
    ratio("append p50", subject[0], baseline[0])

    print("replay of the 1,000-event conversation (20 runs each)")

    async def with_snapshot() -> object:
        return await store.load("bench-conv")

    async def without() -> object:
        return await store.replay("bench-conv", use_snapshot=False)

    fast = describe("from snapshot @900 + 100 events", await timed(with_snapshot, 20))
    slow = describe("from the first event (no snapshot)", await timed(without, 20))
    ratio("snapshot replay p50", fast[0], slow[0])


async def redis_part(url: str) -> None:
    client = create_redis(RedisSettings(url=url))
    health = RedisHealth(BENCH_POOL)
    try:
        await client.flushall()
        await bench_long_term(client, health)
        await bench_state(client, health)
        await bench_episodic_end_to_end(client, health)
    finally:
        await client.aclose()


def main() -> None:
    bench_working()
    rng = np.random.default_rng(42)
    centers = rng.standard_normal((1000, DIMENSIONS)).astype(np.float32)
    bench_search(
        "clustered (1,000 gaussian clusters)",
        clustered(rng, EPISODES, centers),
        clustered(rng, QUERIES, centers),
    )
    if shutil.which("redis-server") is None:
        print("SKIPPED the Redis benchmarks: redis-server is not installed (hack/ensure-redis.sh)")
        return
    from tests.support.redis_server import RedisServer

    server = RedisServer(appendonly=False)
    server.start()
    try:
        asyncio.run(redis_part(server.url))
    finally:
        server.cleanup()
