"""A circuit breaker whose open state is shared by every replica of a pool through Redis.

Each replica keeps its own `CircuitBreaker` (its own window of outcomes); what is shared
is the decision. When a replica opens its breaker it publishes
`{state: open, until: <wall-clock deadline>, epoch: n}` under one hash key; the others
read that key (at most every `syncIntervalSeconds`) and open theirs for the remaining
time, so the pool stops calling a dead dependency together instead of each replica
discovering it separately. Half-open trial calls are rationed pool-wide with a counter
per open episode (`epoch`), and the replica whose trials succeed deletes the key, which
closes the others' breakers on their next sync.

Redis trouble never breaks a call: the replica logs it and falls back to its local breaker.
"""

from __future__ import annotations

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from agent_runtime.resilience.breaker import (
    BreakerState,
    CircuitBreaker,
    CircuitOpenError,
    Permit,
    Transition,
)
from agent_runtime.resilience.clock import Clock, WallClock, monotonic, wall_clock

log = structlog.get_logger("agent_runtime.resilience.shared")

_KEY_TTL_SECONDS = 24 * 3600  # garbage collection only; `until` carries the meaning
_OUTAGE_BACKOFF_SECONDS = 5.0

# Delete the shared open state only if it is still the episode this replica knows about:
# another replica may have re-opened it (a newer epoch) in the meantime.
_CLOSE_IF_EPOCH = """
if redis.call('HGET', KEYS[1], 'epoch') == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class SharedCircuitBreaker:
    """A `CircuitBreaker` kept in step with the other replicas through Redis.

    `key_prefix` scopes the shared state to one pool (`KeySpace.breaker_prefix`): two
    pools with a tool of the same name never share a breaker.
    """

    def __init__(
        self,
        breaker: CircuitBreaker,
        redis: Redis,
        *,
        sync_interval: float | None = None,
        clock: Clock = monotonic,
        wall: WallClock = wall_clock,
        key_prefix: str,
    ) -> None:
        self.breaker = breaker
        self._redis = redis
        self._interval = (
            breaker.settings.sync_interval_seconds if sync_interval is None else sync_interval
        )
        self._clock = clock
        self._wall = wall
        self.key = f"{key_prefix}{breaker.name}"
        self._next_sync: float | None = None
        self._known_epoch: str | None = None
        self._pending: list[Transition] = []
        breaker.add_listener(self._pending.append)

    @property
    def name(self) -> str:
        """The breaker's name."""
        return self.breaker.name

    async def acquire(self) -> Permit:
        """Sync with the pool if due, then ask the local breaker (and ration trials)."""
        await self._flush()
        now = self._clock()
        if self._next_sync is None or now >= self._next_sync:
            self._next_sync = now + self._interval
            if not await self._sync():
                # Redis is unreachable: do not make every call wait for its timeout.
                self._next_sync = now + max(self._interval, _OUTAGE_BACKOFF_SECONDS)
        permit = self.breaker.acquire()
        epoch = self._known_epoch
        half_open = self.breaker.state is BreakerState.HALF_OPEN
        if half_open and epoch is not None and not await self._claim_trial(epoch):
            self.breaker.release(permit)
            raise CircuitOpenError(self.name, 0.0)
        await self._flush()
        return permit

    async def record(self, permit: Permit, *, failed: bool, duration: float | None = None) -> None:
        """Record locally, then publish any transition it caused."""
        self.breaker.record(permit, failed=failed, duration=duration)
        await self._flush()

    def release(self, permit: Permit) -> None:
        """Give back an unused permit."""
        self.breaker.release(permit)

    # ------------------------------------------------------------------ Redis

    async def _sync(self) -> bool:
        """Follow the pool's state; False when Redis could not be read."""
        try:
            raw = await self._redis.hgetall(self.key)
        except (RedisError, OSError) as exc:
            log.warning("shared breaker state unreadable", breaker=self.name, error=str(exc))
            return False
        shared = {_text(k): _text(v) for k, v in raw.items()}
        epoch = shared.get("epoch")
        if shared.get("state") == "open" and epoch is not None:
            remaining = float(shared.get("until", "0")) - self._wall()
            if epoch != self._known_epoch:
                self._known_epoch = epoch
                if remaining > 0:
                    self.breaker.force_open(remaining, remote=True)
                elif self.breaker.state is BreakerState.CLOSED:
                    # The episode is already in its half-open phase: join it as a trial.
                    self.breaker.force_open(0.0, remote=True)
        elif self._known_epoch is not None:
            self._known_epoch = None
            if self.breaker.state is not BreakerState.CLOSED:
                self.breaker.reset(remote=True)
        return True

    async def _claim_trial(self, epoch: str) -> bool:
        key = f"{self.key}:trials:{epoch}"
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incr(key)
                pipe.expire(key, _KEY_TTL_SECONDS)
                count, _ = await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("shared breaker trial unclaimable", breaker=self.name, error=str(exc))
            return True
        return int(count) <= self.breaker.settings.permitted_calls_in_half_open

    async def _flush(self) -> None:
        while self._pending:
            transition = self._pending.pop(0)
            if transition.remote:
                continue
            try:
                if transition.target is BreakerState.OPEN:
                    await self._publish_open()
                elif transition.target is BreakerState.CLOSED and self._known_epoch is not None:
                    await self._redis.eval(_CLOSE_IF_EPOCH, 1, self.key, self._known_epoch)
                    self._known_epoch = None
            except (RedisError, OSError) as exc:
                log.warning("shared breaker state unpublished", breaker=self.name, error=str(exc))

    async def _publish_open(self) -> None:
        snapshot = self.breaker.snapshot()
        until = self._wall() + snapshot.retry_after_seconds
        epoch = str(await self._redis.incr(f"{self.key}:epoch"))
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.key, mapping={"state": "open", "until": repr(until), "epoch": epoch})
            pipe.expire(self.key, _KEY_TTL_SECONDS)
            await pipe.execute()
        self._known_epoch = epoch


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
