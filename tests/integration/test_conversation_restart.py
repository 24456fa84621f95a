"""Kill an agent process mid-conversation; another process recalls and continues it."""

from __future__ import annotations

import json
import subprocess
import sys

from agent_runtime.config.memory import MemoryConfig
from agent_runtime.conversation.state import InputReceived, fold, new_state
from agent_runtime.conversation.store import ConversationStore
from agent_runtime.memory import MemoryHierarchy, create_health, create_redis
from tests.support.identity import identity

AGENT = """
import asyncio, json, sys
from agent_runtime.config import PoolIdentity
from agent_runtime.config.memory import MemoryConfig
from agent_runtime.memory import MemoryHierarchy, create_health, create_redis
from agent_runtime.conversation.store import ConversationStore
from agent_runtime.conversation.state import (
    InputReceived, ModelCalled, ResponseGenerated, ToolCalled, ToolResultReceived,
)

async def main():
    config = MemoryConfig.model_validate_json(sys.argv[1])
    role = sys.argv[2]
    pool = PoolIdentity(namespace="tests", name="restart")
    client = create_redis(config.redis)
    health = create_health(pool, client, config.redis)
    memory = MemoryHierarchy.from_config(config, pool, client, health)
    store = ConversationStore.from_config(config, pool, client, health)
    state = await store.load("support-42")
    if role == "first":
        customer = {"name": "Ada", "tier": "gold"}
        await memory.remember("customer", customer, tenant="acme", importance=0.8)
        state = await store.append(
            state,
            InputReceived(at=1, content="where is my order?"),
            ModelCalled(at=2, model="m", prompt_tokens=12),
            ToolCalled(at=3, call_id="t1", tool="orders", arguments={"id": 7}),
        )
        print(json.dumps({"version": state.version}), flush=True)
        sys.stdin.readline()  # hold the process open until it is killed
    else:
        found = await memory.recall("customer", tenant="acme")
        state = await store.append(
            state,
            ToolResultReceived(at=4, call_id="t1", output={"status": "shipped"}),
            ResponseGenerated(at=5, content="It shipped, Ada."),
        )
        result = {"recalled": found.model_dump(mode="json"), "state": state.model_dump(mode="json")}
        print(json.dumps(result))
    await client.aclose()

asyncio.run(main())
"""


def run_agent(config: MemoryConfig, role: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", AGENT, config.model_dump_json(), role],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


async def test_a_killed_agent_is_continued_by_another_process(redis_url: str) -> None:
    config = MemoryConfig.model_validate(
        {"redis": {"url": redis_url}, "state": {"snapshotEvery": 2}}
    )
    first = run_agent(config, "first")
    assert first.stdout is not None
    assert json.loads(first.stdout.readline()) == {"version": 3}  # acknowledged
    first.kill()
    first.wait(timeout=30)
    assert first.returncode != 0  # really killed, not a clean exit

    second = run_agent(config, "second")
    output, _ = second.communicate(timeout=60)
    assert second.returncode == 0
    result = json.loads(output)
    assert result["recalled"]["tier"] == "longTerm"
    assert result["recalled"]["value"] == {"name": "Ada", "tier": "gold"}
    assert result["state"]["version"] == 5
    assert result["state"]["status"] == "responded"

    client = create_redis(config.redis)
    try:
        pool = identity("restart")
        health = create_health(pool, client, config.redis)
        store = ConversationStore.from_config(config, pool, client, health)
        events = [event for _, event in await store.events("support-42")]
        assert (await store.load("support-42")) == fold(new_state("support-42"), events)
        assert isinstance(events[0], InputReceived)
        memory = MemoryHierarchy.from_config(config, pool, client, health)
        assert await memory.forget("customer", tenant="acme") == ("longTerm", "episodic")
    finally:
        await client.aclose()
