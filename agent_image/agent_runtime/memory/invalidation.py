"""Keeps other replicas' working memories honest when a key changes or is forgotten.

Working memory is per replica, so an overwrite or a `forget` on one replica would
leave stale copies on the others. Every change to a persisted memory is published on
a pool-wide Redis pub/sub channel; each replica listens and drops its copies. Pub/sub
delivers at most once, so whenever the subscription is (re)established, the listener
also drops every working entry that came from Redis: after a gap, nothing stale can
survive, and the next recall reads Redis again. Working-only memories stay.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from typing import Any

import structlog
from redis.asyncio import Redis

from agent_runtime.cancellation import stop_if_cancelled
from agent_runtime.memory.health import UNREACHABLE_ERRORS, RedisHealth
from agent_runtime.memory.keys import KeySpace

log = structlog.get_logger(__name__)


class Invalidator:
    """Publishes changed keys and applies other replicas' changes to this one."""

    def __init__(
        self,
        client: Redis,
        keys: KeySpace,
        health: RedisHealth,
        *,
        replica_id: str | None = None,
        max_backoff: float = 5.0,
    ) -> None:
        self._client = client
        self._health = health
        self.channel = keys.memory_invalidation_channel
        self.replica_id = replica_id or uuid.uuid4().hex
        self._max_backoff = max_backoff
        self.subscribed = asyncio.Event()

    async def publish(self, tenant: str, key: str) -> None:
        """Tell the other replicas that (tenant, key) changed."""
        message = json.dumps({"origin": self.replica_id, "tenant": tenant, "key": key})

        async def send() -> Any:
            return await self._client.publish(self.channel, message)

        await self._health.call(send, what=f"invalidation of {key!r}")

    async def run(
        self,
        *,
        drop_key: Callable[[str, str], object],
        drop_durable: Callable[[], object],
    ) -> None:
        """Listen forever (run as a task); reconnects with backoff."""
        backoff = 0.1
        while True:
            try:
                await self._listen(drop_key, drop_durable)
            except asyncio.CancelledError:
                raise
            except UNREACHABLE_ERRORS as exc:
                log.warning("memory invalidation listener lost redis", error=str(exc))
            except Exception:  # a bug must not end invalidation for good
                log.exception("memory invalidation listener failed")
            self.subscribed.clear()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self._max_backoff)

    async def _listen(
        self, drop_key: Callable[[str, str], object], drop_durable: Callable[[], object]
    ) -> None:
        pubsub = self._client.pubsub()
        try:
            await pubsub.subscribe(self.channel)
            while True:
                message = await pubsub.get_message(timeout=5.0)
                stop_if_cancelled()
                if message is None:
                    continue
                if message["type"] == "subscribe":
                    drop_durable()  # whatever changed while we were not listening
                    self.subscribed.set()
                elif message["type"] == "message":
                    self._apply(message["data"], drop_key)
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]  # typed from redis 8.2

    def _apply(self, data: bytes, drop_key: Callable[[str, str], object]) -> None:
        try:
            change = json.loads(data)
            origin, tenant, key = change["origin"], change["tenant"], change["key"]
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring malformed memory invalidation", data=repr(data[:200]))
            return
        if origin != self.replica_id:
            drop_key(str(tenant), str(key))
