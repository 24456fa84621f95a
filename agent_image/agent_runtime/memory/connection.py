"""The runtime's Redis client, configured to fail fast and reconnect by itself."""

from __future__ import annotations

from collections.abc import Mapping

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from agent_runtime.config.identity import PoolIdentity
from agent_runtime.config.memory import RedisSettings
from agent_runtime.memory.health import RedisHealth


def create_redis(settings: RedisSettings, environ: Mapping[str, str] | None = None) -> Redis:
    """A `redis.asyncio.Redis` with short timeouts and bounded retries.

    redis-py's own defaults retry for many seconds; during an outage that would stall
    every request, so retries are few and short and the `RedisHealth` gate takes over.
    Connections are re-established by the pool on the next call once Redis is back.
    """
    return Redis.from_url(
        settings.resolve_url(environ),
        socket_timeout=settings.socket_timeout_seconds,
        socket_connect_timeout=settings.connect_timeout_seconds,
        health_check_interval=int(settings.health_check_interval_seconds),
        retry=Retry(
            ExponentialBackoff(cap=settings.retry_backoff_cap_seconds, base=0.05),
            settings.retry_attempts,
        ),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        decode_responses=False,
    )


def create_health(pool: PoolIdentity, client: Redis, settings: RedisSettings) -> RedisHealth:
    """The reachability tracker for `client`, pinging it to recover."""

    async def ping() -> object:
        return await client.ping()

    return RedisHealth(pool, ping=ping, max_backoff=settings.reconnect_backoff_max_seconds)
