"""The activator's wake requests: members of the pool's wake key in the pool's own Redis,
in the runtime's layout (`agent_runtime.config.load.wake_key`), which the autoscaler's
reader counts as demand for a pool with no ready replica.

The same protocol as a pool-as-tool caller's (`agent_runtime.tools.wake`, which the
operator may not import): a member scored by the Unix time until which the request
waits, removed when the wait ends, dead past its score in any case (an activator that
dies mid-wait wakes a pool no longer than the request would have waited).
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
from agent_runtime.config.memory import MemoryConfig

log = structlog.get_logger(__name__)

KEY_PREFIX: str = MemoryConfig.model_fields["key_prefix"].default
"""The runtime's Redis key prefix (pools do not set another)."""
TIMEOUT_SECONDS = 2.0


class WakeRequests:
    """One client per Redis URL, made on first use."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clients: dict[str, Redis] = {}
        self._clock = clock

    def _client(self, url: str) -> Redis:
        found = self._clients.get(url)
        if found is None:
            found = Redis.from_url(
                url, socket_timeout=TIMEOUT_SECONDS, socket_connect_timeout=TIMEOUT_SECONDS
            )
            self._clients[url] = found
        return found

    async def register(self, url: str, pool: PoolIdentity, waits_seconds: float) -> str | None:
        """Ask for `pool` to be woken for `waits_seconds`; the member to withdraw, or None
        when Redis could not be written (logged: the request still waits, and a pool
        woken by other demand answers it)."""
        now = self._clock()
        member = uuid.uuid4().hex
        client = self._client(url)
        try:
            await client.eval(
                WAKE_REGISTER_SCRIPT,
                1,
                wake_key(KEY_PREFIX, pool),
                member,
                now + waits_seconds,
                now,
            )
        except (RedisError, OSError) as exc:
            log.warning("wake request not registered", pool=str(pool), error=str(exc))
            return None
        return member

    async def withdraw(self, url: str, pool: PoolIdentity, member: str) -> None:
        with contextlib.suppress(RedisError, OSError):
            await self._client(url).zrem(wake_key(KEY_PREFIX, pool), member)

    async def close(self) -> None:
        for client in self._clients.values():
            with contextlib.suppress(RedisError, OSError):
                await client.aclose()
        self._clients.clear()
