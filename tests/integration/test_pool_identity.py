"""Two pools called `support` in two namespaces, one Redis: they never share a key.

Each runtime writes memories (long-term and episodic), conversation events, shared
cache entries and shared breaker state; the keys each pool wrote are disjoint, every
key in Redis belongs to exactly one pool, and each pool reads back only its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from agent_runtime.config import RuntimeConfig
from agent_runtime.config.tools import ToolHints
from agent_runtime.conversation.state import InputReceived
from agent_runtime.conversation.store import ConversationStore
from agent_runtime.memory.keys import KeySpace
from agent_runtime.resilience.breaker import CircuitOpenError
from agent_runtime.runtime import Runtime
from agent_runtime.tools.errors import ToolError
from agent_runtime.tools.tool import CallContext
from tests.support.identity import identity

SHOP = identity("support", namespace="shop")
BANK = identity("support", namespace="bank")
ALICE = CallContext(tenant="alice", conversation_id="c-1")


def config_for(pool_namespace: str, redis_url: str) -> RuntimeConfig:
    return RuntimeConfig.model_validate(
        {
            "pool": {"namespace": pool_namespace, "name": "support"},
            "memory": {
                "redis": {"url": redis_url},
                "episodic": {"embedder": {"kind": "hashing", "dimensions": 32}},
            },
            "tools": {
                "cache": {"shared": True},
                "resilience": {
                    "retry": {"enabled": False},
                    "circuitBreaker": {"shared": True, "minimumCalls": 2, "windowSize": 2},
                },
            },
        }
    )


class Pool:
    """One pool's runtime, with a read-only tool that answers its own name and a tool
    whose dependency is down, so the cache and the breaker both write to Redis."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.calls = 0
        name = runtime.config.pool.namespace

        async def whoami(args: dict[str, Any], context: CallContext) -> str:
            self.calls += 1
            return f"{name}:{context.tenant}"

        async def down(args: dict[str, Any], context: CallContext) -> None:
            self.calls += 1
            raise ToolError("down", "dependency unavailable", kind="server")

        registry = runtime.registry
        registry.register_function(
            whoami, name="whoami", description="", hints=ToolHints(read_only=True)
        )
        registry.register_function(down, name="down", description="")
        assert runtime.redis is not None
        assert runtime.health is not None
        self.conversations = ConversationStore.from_config(
            runtime.config.memory, runtime.config.pool, runtime.redis, runtime.health
        )


@pytest.fixture
async def pools(redis_url: str) -> AsyncIterator[tuple[Pool, Pool]]:
    shop = Pool(await Runtime.start(config_for("shop", redis_url)))
    bank = Pool(await Runtime.start(config_for("bank", redis_url)))
    try:
        yield shop, bank
    finally:
        await shop.runtime.stop()
        await bank.runtime.stop()


async def _write_everything(pool: Pool, value: str) -> None:
    memory = pool.runtime.memory
    tiers = await memory.remember("colour", value, tenant="alice", importance=0.9)
    assert set(tiers) == {"working", "longTerm", "episodic"}
    state = await pool.conversations.load("c-1")
    await pool.conversations.append(state, InputReceived(at=1.0, content=value))
    await pool.runtime.registry.call("whoami", {}, context=ALICE)
    for _ in range(2):
        with pytest.raises(ToolError):
            await pool.runtime.registry.call("down", {}, context=ALICE)


async def _keys(client: Redis) -> set[str]:
    return {key.decode() async for key in client.scan_iter(match="*")}


async def test_same_named_pools_in_two_namespaces_share_no_key(
    pools: tuple[Pool, Pool], redis_url: str
) -> None:
    shop, bank = pools
    await _write_everything(shop, "teal")
    shop_calls = shop.calls
    shop_root = KeySpace("agentpool", SHOP).root + ":"
    async with Redis.from_url(redis_url) as client:
        # Both replicas publish their load from start-up, so the bank has a key already.
        before = await _keys(client)
        shop_keys = {key for key in before if key.startswith(shop_root)}
        assert before - shop_keys == {KeySpace("agentpool", BANK).load}

        # The shop's breaker for `down` is open now, and shared through Redis...
        with pytest.raises(CircuitOpenError):
            await shop.runtime.registry.call("down", {}, context=ALICE)
        assert shop.calls == shop_calls
        # ...but the bank's tool of the same name is still called: its own breaker.
        await _write_everything(bank, "crimson")
        assert bank.calls == 3  # whoami computed for the bank, not served from the shop's cache

        every_key = await _keys(client)
        bank_root = KeySpace("agentpool", BANK).root + ":"
        bank_keys = {key for key in every_key if key.startswith(bank_root)}
        # Nothing outside the two pools' spaces, and the bank added nothing to the shop's.
        assert every_key == shop_keys | bank_keys
        assert {key for key in every_key if key.startswith(shop_root)} == shop_keys
        assert all(key.startswith(shop_root) for key in shop_keys), shop_keys
        for keys, root in ((shop_keys, shop_root), (bank_keys, bank_root)):
            kinds = {key.removeprefix(root).split(":")[0] for key in keys}
            assert {"tenant", "ep", "conv", "cache", "breaker", "load"} <= kinds, keys

        channels = {channel.decode() for channel in await client.pubsub_channels()}
        assert KeySpace("agentpool", SHOP).memory_invalidation_channel in channels
        assert KeySpace("agentpool", BANK).memory_invalidation_channel in channels

    for pool, value in ((shop, "teal"), (bank, "crimson")):
        pool.runtime.memory.working.drop_key("alice", "colour")  # read Redis, not this process
        found = await pool.runtime.memory.recall("colour", tenant="alice")
        assert found is not None
        assert (found.tier, found.value) == ("longTerm", value)
        hits = await pool.runtime.memory.search("colour", tenant="alice", k=5)
        assert [hit.value for hit in hits] == [value]
        state = await pool.conversations.load("c-1")
        assert [m.content for m in state.messages] == [value]
    whoami = await bank.runtime.registry.call("whoami", {}, context=ALICE)
    assert (whoami.value, whoami.cached) == ("bank:alice", True)
