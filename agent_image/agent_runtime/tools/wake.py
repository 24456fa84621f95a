"""Requests that another pool be woken, for pool-as-tool calls that find it with no ready
replica (layout: `agent_runtime.config.load`, the `wake` key).

A pool scaled to zero has nothing to answer a chat request, and no activator holds one
while it wakes. The caller therefore says that it waits: one member of a sorted set in
its own Redis (the only one it may write), scored by the Unix time until which it
waits; the autoscaler reads every pool's Redis and counts those members as demand for
the pool they name. An entry is removed when the call ends and is dead past its score in
any case, so a caller that dies mid-wait wakes a pool for no longer than it would have
waited. Redis being down costs only the wake-up: the call still retries until its
deadline (a pool woken by other demand answers it).

Security: any pod that can write a Redis the operator reads can wake any pool (name it
in a key). That costs replicas, not data: the request carries nothing to the pool, and
the caller still needs the pool's own credentials to talk to it.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from agent_runtime.config.identity import PoolIdentity
from agent_runtime.config.load import WAKE_REGISTER_SCRIPT, wake_key

log = structlog.get_logger(__name__)


class WakeRequests:
    """This replica's requests that other pools be woken, in its own Redis."""

    def __init__(
        self,
        client: Redis,
        key_prefix: str,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._prefix = key_prefix
        self._clock = clock
        self._script = client.register_script(WAKE_REGISTER_SCRIPT)

    def key(self, pool: PoolIdentity) -> str:
        return wake_key(self._prefix, pool)

    async def register(self, pool: PoolIdentity, waits_seconds: float) -> str | None:
        """Ask for `pool` to be woken, for a caller that waits `waits_seconds` more; the
        member to withdraw, or None when Redis could not be written (logged)."""
        now = self._clock()
        member = uuid.uuid4().hex
        try:
            await self._script(keys=[self.key(pool)], args=[member, now + waits_seconds, now])
        except (RedisError, OSError) as exc:
            log.warning("wake request not registered", pool=str(pool), error=str(exc))
            return None
        log.info("asked for a pool with no ready replica to wake", pool=str(pool))
        return member

    async def withdraw(self, pool: PoolIdentity, member: str) -> None:
        """The call has ended: its request no longer counts (it would lapse anyway)."""
        with contextlib.suppress(RedisError, OSError):
            await self._client.zrem(self.key(pool), member)
