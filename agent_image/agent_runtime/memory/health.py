"""Redis reachability: degrade to working memory, refuse what cannot be kept, recover.

Every Redis operation of the memory tiers and the conversation store goes through
`RedisHealth.call`. A connection failure marks the runtime degraded (gauge, log,
`status()` for `/readyz`) and turns into `StoreUnavailableError`; while degraded,
calls fail fast until the next probe time on an exponential backoff, so a dead Redis
costs no timeouts on the hot path. The first call that succeeds clears the state.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog
from prometheus_client import Gauge
from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from agent_runtime.cancellation import stop_if_cancelled
from agent_runtime.config.identity import PoolIdentity
from agent_runtime.memory.errors import StoreUnavailableError

T = TypeVar("T")

log = structlog.get_logger(__name__)

MEMORY_DEGRADED = Gauge(
    "agentpool_memory_degraded",
    "1 while this replica cannot reach Redis and serves from working memory only.",
    ["namespace", "pool"],
)

# BusyLoadingError (Redis replaying its AOF after a restart) subclasses ConnectionError.
UNREACHABLE_ERRORS: tuple[type[BaseException], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    ConnectionError,
    TimeoutError,
)


class MemoryStatus(BaseModel):
    """What `/readyz` can report about the memory backend."""

    model_config = ConfigDict(frozen=True, alias_generator=to_camel, populate_by_name=True)

    degraded: bool
    degraded_for_seconds: float | None = None
    last_error: str | None = None
    failures: int = 0
    detail: str


class RedisHealth:
    """Tracks whether Redis answers, and gates calls to it while it does not."""

    def __init__(
        self,
        pool: PoolIdentity,
        *,
        ping: Callable[[], Awaitable[object]] | None = None,
        initial_backoff: float = 0.1,
        max_backoff: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pool = pool
        self._ping = ping
        self._initial_backoff = initial_backoff
        self._max_backoff = max_backoff
        self._clock = clock
        self._degraded_since: float | None = None
        self._next_attempt = 0.0
        self._backoff = initial_backoff
        self._failures = 0
        self._last_error: str | None = None
        self._gauge = MEMORY_DEGRADED.labels(namespace=pool.namespace, pool=pool.name)
        self._gauge.set(0)

    @property
    def degraded(self) -> bool:
        return self._degraded_since is not None

    def status(self) -> MemoryStatus:
        """A snapshot of the state, for readiness probes and the API."""
        if self._degraded_since is None:
            return MemoryStatus(degraded=False, detail="redis reachable")
        return MemoryStatus(
            degraded=True,
            degraded_for_seconds=max(0.0, self._clock() - self._degraded_since),
            last_error=self._last_error,
            failures=self._failures,
            detail="redis unreachable: serving working memory only; writes needing "
            "long-term memory, episodes or conversation state are refused",
        )

    async def call(self, operation: Callable[[], Awaitable[T]], *, what: str) -> T:
        """Run one Redis operation; `StoreUnavailableError` if Redis cannot be reached."""
        if self._degraded_since is not None and self._clock() < self._next_attempt:
            raise StoreUnavailableError(
                f"{what} refused: Redis is unreachable ({self._last_error}); "
                "nothing was written, retry later"
            )
        try:
            result = await operation()
        except UNREACHABLE_ERRORS as exc:
            self.record_failure(exc)
            raise StoreUnavailableError(
                f"{what} failed: Redis is unreachable ({exc}); nothing was acknowledged"
            ) from exc
        self.record_success()
        return result

    def record_failure(self, exc: BaseException) -> None:
        """Note that Redis could not be reached; schedule the next attempt."""
        now = self._clock()
        self._failures += 1
        self._last_error = f"{type(exc).__name__}: {exc}"
        if self._degraded_since is None:
            self._degraded_since = now
            self._backoff = self._initial_backoff
            self._gauge.set(1)
            log.warning(
                "memory degraded: redis unreachable", pool=str(self.pool), error=self._last_error
            )
        else:
            self._backoff = min(self._backoff * 2, self._max_backoff)
        self._next_attempt = now + self._backoff

    def record_success(self) -> None:
        """Note that Redis answered; leave the degraded state if in it."""
        if self._degraded_since is None:
            return
        outage = self._clock() - self._degraded_since
        self._degraded_since = None
        self._failures = 0
        self._last_error = None
        self._backoff = self._initial_backoff
        self._gauge.set(0)
        log.info("memory recovered: redis reachable again", pool=str(self.pool), outage_s=outage)

    async def probe(self) -> bool:
        """Ping Redis now (ignoring the backoff); True if it answered."""
        if self._ping is None:
            raise RuntimeError("RedisHealth was built without a ping callable")
        self._next_attempt = 0.0
        try:
            await self.call(self._ping, what="redis ping")
        except StoreUnavailableError:
            return False
        return True

    async def watch(self, *, interval: float = 1.0) -> None:
        """Probe forever (run as a task): notice outages and recoveries without traffic."""
        while True:
            if self.degraded:
                await asyncio.sleep(max(0.0, self._next_attempt - self._clock()))
            else:
                await asyncio.sleep(interval)
            try:
                await self.probe()
            except Exception:  # e.g. an auth error: keep watching, never die silently
                log.exception("memory health probe failed", pool=str(self.pool))
            stop_if_cancelled()
