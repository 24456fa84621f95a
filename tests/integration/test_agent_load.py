"""Load samples in a real Redis: published on change, read for all pools in one round
trip, dead pods' samples pruned, withdrawn on exit."""

from __future__ import annotations

import json

import redis.asyncio as aioredis

from agent_runtime.agent.admission import Admission
from agent_runtime.agent.load import LoadPublisher
from agent_runtime.config.load import (
    DrainRequest,
    LoadSample,
    decode_samples,
    drain_key,
    encode_drain_request,
    encode_sample,
    load_key,
)
from tests.support.identity import identity
from tests.support.wait import async_wait_until


async def test_publish_read_all_pools_prune_and_withdraw(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    pools = [identity("a"), identity("b")]
    admissions = [Admission(4), Admission(8)]
    publishers = [
        LoadPublisher(
            client,
            load_key("agentpool", p),
            drain_key("agentpool", p),
            f"pod-{p.name}",
            a,
            interval=1.0,
        )
        for p, a in zip(pools, admissions, strict=True)
    ]
    dead = LoadSample(active_turns=3, capacity=4, at=1.0)  # a pod gone long ago
    await client.hset(load_key("agentpool", pools[0]), "pod-dead", encode_sample(dead))
    for publisher in publishers:
        await publisher.publish()
    with admissions[0].turn():
        await publishers[0].publish()
        # The operator's read: every pool in one pipelined round trip.
        async with client.pipeline(transaction=False) as pipe:
            for pool in pools:
                pipe.hgetall(load_key("agentpool", pool))
            raw = await pipe.execute()
        now = max(json.loads(v)["at"] for fields in raw for v in fields.values())
        read = [decode_samples(f, now=now, publish_interval_seconds=1.0) for f in raw]
    assert read[0]["pod-a"].active_turns == 1
    assert read[0]["pod-a"].capacity == 4
    assert read[1]["pod-b"].capacity == 8
    assert b"pod-dead" not in raw[0]  # pruned by the publisher, not only skipped
    assert 0 < await client.pttl(load_key("agentpool", pools[0])) <= 5000
    await publishers[0].withdraw()
    assert await client.hgetall(load_key("agentpool", pools[0])) == {}
    await client.aclose()


async def test_changes_are_published_without_waiting_for_the_interval(redis_url: str) -> None:
    import asyncio

    client = aioredis.Redis.from_url(redis_url)
    admission = Admission(2)
    key = load_key("agentpool", identity("c"))
    publisher = LoadPublisher(client, key, key + ":drain", "pod", admission, interval=30.0)
    task = asyncio.create_task(publisher.run())

    async def active(n: int) -> bool:
        value = await client.hget(key, "pod")
        return value is not None and json.loads(value)["activeTurns"] == n

    await async_wait_until(lambda: active(0), timeout=5, what="first sample")
    with admission.turn():
        await async_wait_until(lambda: active(1), timeout=2, what="the sample after a change")
    await async_wait_until(lambda: active(0), timeout=2, what="the sample after the turn")
    task.cancel()
    await client.aclose()


async def test_a_burst_of_turns_is_paced_into_few_writes_and_the_last_state_wins(
    redis_url: str,
) -> None:
    """Turns starting and ending faster than the publisher's gap cost a write per gap, not
    two per turn, and the sample after the burst is the state after it."""
    import asyncio

    client = aioredis.Redis.from_url(redis_url)
    admission = Admission(4)
    key = load_key("agentpool", identity("burst"))
    publisher = LoadPublisher(client, key, key + ":drain", "pod", admission, interval=30.0)
    task = asyncio.create_task(publisher.run())
    await async_wait_until(lambda: _published(publisher, 1), timeout=5, what="first sample")
    loop = asyncio.get_running_loop()
    started, turns = loop.time(), 0
    held = admission.turn()
    held.__enter__()  # one turn stays open through the burst: the last state has it
    while loop.time() - started < 0.5:
        with admission.turn():
            turns += 1
            await asyncio.sleep(0)  # the publisher may run between any two changes
        await asyncio.sleep(0.001)

    async def shows_one_active() -> bool:
        value = await client.hget(key, "pod")
        return value is not None and json.loads(value)["activeTurns"] == 1

    await async_wait_until(shows_one_active, timeout=2, what="the state after the burst")
    elapsed = loop.time() - started
    assert turns > 100
    # One write per 50 ms gap at most (plus the first and the last), not 2 per turn.
    assert publisher.published <= elapsed / 0.05 + 3, (publisher.published, turns)
    held.__exit__(None, None, None)
    task.cancel()
    await client.aclose()


async def _published(publisher: LoadPublisher, at_least: int) -> bool:
    return publisher.published >= at_least


async def test_a_drain_request_is_followed_while_it_stands_and_lapses(redis_url: str) -> None:
    """The autoscaler's drain request: the replica drains on its next publication, says
    so in its sample, takes turns again when the request is withdrawn, and when it lapses
    even with Redis gone."""
    client = aioredis.Redis.from_url(redis_url)
    now = [1000.0]
    admission = Admission(2)
    pool = identity("drained")
    publisher = LoadPublisher(
        client,
        load_key("agentpool", pool),
        drain_key("agentpool", pool),
        "pod-1",
        admission,
        interval=1.0,
        clock=lambda: now[0],
    )
    request = encode_drain_request(DrainRequest(until=1030.0))
    await client.hset(drain_key("agentpool", pool), "pod-1", request)
    await client.hset(drain_key("agentpool", pool), "pod-2", request)  # another pod's
    await publisher.publish()
    assert admission.draining
    await publisher.publish()  # the sample after the change says so
    sample = json.loads(await client.hget(load_key("agentpool", pool), "pod-1"))
    assert sample["draining"] is True
    await client.hdel(drain_key("agentpool", pool), "pod-1")  # the operator changed its mind
    await publisher.publish()
    assert not admission.draining
    admission.drain()  # a shutdown is for good: no request withdraws it
    await publisher.publish()
    assert admission.draining
    admission.resume("shutdown")

    await client.hset(drain_key("agentpool", pool), "pod-1", request)
    await publisher.publish()
    assert admission.draining
    now[0] = 1031.0  # past `until`, read or not
    publisher._lapse(now[0])
    assert not admission.draining
    await client.hset(drain_key("agentpool", pool), "pod-1", "not json")
    await publisher.publish()  # an unreadable request is no request
    assert not admission.draining
    await client.aclose()
