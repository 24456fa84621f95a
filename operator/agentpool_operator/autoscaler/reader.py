"""Reads every pool's load from Redis: one pipelined round trip per Redis per tick.

The layout is the runtime's (`agent_runtime.config.load`): a hash of per-pod samples, and,
for a pool whose signal counts queued tasks, its task stream's length and waiting count
(what wakes a pool that has no replica left to publish). For a pool with no ready
replica, also the callers waiting for it to wake: its wake key, read from EVERY Redis of
the tick (a caller writes its own Redis, which may be another pool's), in the same
pipelines; a pool with ready replicas costs no such read. Also writes the drain
requests the autoscaler makes before a scale-down.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from agent_runtime.config.load import (
    DrainRequest,
    LoadSample,
    decode_sample,
    encode_drain_request,
)
from agentpool_operator.autoscaler import metrics

log = structlog.get_logger(__name__)

# A tick is one second: a Redis that does not answer within this costs the pools on it
# one reading (the policy holds them), never the tick of the pools on other Redis.
READ_TIMEOUT_SECONDS = 0.5


@dataclass(frozen=True)
class Target:
    """Where one pool's load is."""

    key: str
    """The pool ("namespace/name")."""
    url: str
    """Its Redis."""
    load_key: str
    drain_key: str
    queue_keys: tuple[str, str] | None
    """The task stream and waiting count, when the signal counts queued tasks."""
    wake_key: str | None = None
    """The callers' requests that the pool be woken (read while it has no ready replica)."""


@dataclass(frozen=True)
class Reading:
    """One pool's load as read at one tick."""

    samples: dict[str, LoadSample]
    """Every readable sample by pod name, stale ones included (the policy decides)."""
    queue_length: int
    """Tasks in the pool's queue (queued or running), 0 when not read."""
    waking: int = 0
    """Callers waiting for the pool to wake, in every Redis that answered; 0 when not read."""


class LoadReader:
    """One client per Redis URL, made on first use and closed when no pool names it."""

    def __init__(self, *, timeout: float = READ_TIMEOUT_SECONDS) -> None:
        self._timeout = timeout
        self._clients: dict[str, Redis] = {}

    def _client(self, url: str) -> Redis:
        client = self._clients.get(url)
        if client is None:
            client = Redis.from_url(
                url,
                socket_timeout=self._timeout,
                socket_connect_timeout=self._timeout,
                retry_on_timeout=False,
                health_check_interval=0,
            )
            self._clients[url] = client
        return client

    async def read(self, targets: Sequence[Target]) -> dict[str, Reading | None]:
        """Each target's reading; None for the pools whose Redis could not be read."""
        groups: dict[str, list[Target]] = {}
        for target in targets:
            groups.setdefault(target.url, []).append(target)
        await self._close_unused(groups)
        waking = [t for t in targets if t.wake_key is not None]
        now = time.time()
        results = await asyncio.gather(
            *(self._read_one(url, g, waking, now) for url, g in groups.items())
        )
        found: dict[str, Reading | None] = {}
        woken: dict[str, int] = {}
        for readings, counts in results:
            found.update(readings)
            for key, count in counts.items():
                woken[key] = woken.get(key, 0) + count
        for key, count in woken.items():
            reading = found.get(key)
            if reading is not None and count:
                found[key] = dataclasses.replace(reading, waking=count)
        return found

    async def _read_one(
        self, url: str, targets: list[Target], waking: list[Target], now: float
    ) -> tuple[dict[str, Reading | None], dict[str, int]]:
        """This Redis's readings of its own pools, and its wake requests for every pool
        with no ready replica (live: scored after `now`)."""
        started = time.perf_counter()
        live_after = f"({now}"
        try:
            async with self._client(url).pipeline(transaction=False) as pipe:
                for target in targets:
                    pipe.hgetall(target.load_key)
                    if target.queue_keys is not None:
                        pipe.xlen(target.queue_keys[0])
                        pipe.get(target.queue_keys[1])
                for target in waking:
                    assert target.wake_key is not None
                    pipe.zcount(target.wake_key, live_after, "+inf")
                # A key of the wrong type (any pod that writes this Redis can make one)
                # spoils its own pool's reading, not the tick of every pool here.
                raw = await asyncio.wait_for(pipe.execute(raise_on_error=False), self._timeout * 2)
        except (RedisError, OSError, TimeoutError) as exc:
            metrics.READ_FAILURES.inc()
            log.warning("load not read", pools=len(targets), error=str(exc) or type(exc).__name__)
            return {t.key: None for t in targets}, {}
        finally:
            metrics.READ_SECONDS.observe(time.perf_counter() - started)
        counts = raw[len(raw) - len(waking) :]
        own = raw[: len(raw) - len(waking)]
        woken = {t.key: _count(c) for t, c in zip(waking, counts, strict=True)}
        return dict(_decode(targets, own)), woken

    async def request_drain(
        self, url: str, drain_key: str, pods: Iterable[str], until: float
    ) -> None:
        """Ask `pods` to drain until `until` (they follow it on their next publication)."""
        value = encode_drain_request(DrainRequest(until=until))
        mapping: dict[Any, Any] = dict.fromkeys(pods, value)
        if not mapping:
            return
        async with self._client(url).pipeline(transaction=True) as pipe:
            pipe.hset(drain_key, mapping=mapping)
            # The requests outlive no operator: lapsed ones are gone a minute later.
            pipe.pexpireat(drain_key, int((until + 60) * 1000))
            await pipe.execute()

    async def withdraw_drain(self, url: str, drain_key: str, pods: Iterable[str]) -> None:
        """Withdraw drain requests (the pods take turns again)."""
        names = list(pods)
        if names:
            await self._client(url).hdel(drain_key, *names)

    async def _close_unused(self, used: Iterable[str]) -> None:
        for url in set(self._clients) - set(used):
            client = self._clients.pop(url)
            with contextlib.suppress(RedisError, OSError):
                await client.aclose()

    async def close(self) -> None:
        await self._close_unused(())


def _decode(targets: list[Target], raw: list[Any]) -> Iterable[tuple[str, Reading | None]]:
    position = 0
    for target in targets:
        fields = raw[position]
        position += 1
        queue_length = 0
        if target.queue_keys is not None:
            length, waiting = raw[position], raw[position + 1]
            position += 2
            queue_length = _count(length) + _count(waiting)
        if isinstance(fields, Exception):  # e.g. WRONGTYPE: this pool's key only
            yield target.key, None
            continue
        samples: dict[str, LoadSample] = {}
        for pod, value in fields.items():
            sample = decode_sample(value, loads=orjson.loads)
            if sample is not None:
                samples[pod.decode() if isinstance(pod, bytes) else str(pod)] = sample
        yield target.key, Reading(samples, queue_length)


def _count(value: object) -> int:
    if isinstance(value, int):
        return max(0, value)
    if isinstance(value, bytes | str):
        try:
            return max(0, int(value))
        except ValueError:
            return 0
    return 0
