"""Publishes this replica's load for the autoscaler (layout: `agent_runtime.config.load`).

On every change of the admission (a turn starts or ends, draining begins) and at least
every `load.publishIntervalSeconds`, one Lua script writes this pod's sample, deletes
dead pods' samples and renews the hash's expiry, atomically. Changes that arrive while a
write is in flight are folded into the next one, so a burst of turns costs a few writes,
not one per turn. Redis being down costs nothing but the signal: the replica keeps
serving, the publication resumes when Redis is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from agent_runtime.agent import metrics
from agent_runtime.agent.admission import Admission
from agent_runtime.config.load import LoadSample, encode_sample, stale_after
from agent_runtime.resilience.deadline import within

log = structlog.get_logger(__name__)

# KEYS: the pool's load hash. ARGV: pod, sample JSON, now, stale seconds, expiry ms.
_PUBLISH = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local oldest = tonumber(ARGV[3]) - tonumber(ARGV[4])
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local ok, sample = pcall(cjson.decode, all[i + 1])
  if not ok or type(sample) ~= 'table' or type(sample['at']) ~= 'number'
     or sample['at'] < oldest then
    redis.call('HDEL', KEYS[1], all[i])
  end
end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return #all / 2
"""


class LoadPublisher:
    """Keeps this pod's field of the pool's load hash current."""

    def __init__(
        self,
        client: Redis,
        key: str,
        pod: str,
        admission: Admission,
        *,
        interval: float,
        queued_tasks: Callable[[], int] = lambda: 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self.key = key
        self.pod = pod
        self._admission = admission
        self._interval = interval
        self.queued_tasks = queued_tasks
        self._clock = clock
        self._changed = asyncio.Event()
        self._script = client.register_script(_PUBLISH)
        self.published = 0
        admission.on_change(self._changed.set)

    def sample(self) -> LoadSample:
        queued = self.queued_tasks()
        metrics.QUEUED_TASKS.set(queued)
        return LoadSample(
            active_turns=self._admission.active,
            capacity=self._admission.capacity,
            queued_tasks=queued,
            draining=self._admission.draining,
            at=self._clock(),
        )

    async def publish(self) -> None:
        """Write the current sample now."""
        sample = self.sample()
        stale = stale_after(self._interval)
        await self._script(
            keys=[self.key],
            args=[self.pod, encode_sample(sample), sample.at, stale, int(stale * 1000)],
        )
        self.published += 1

    async def run(self) -> None:
        """Publish on every change and every interval, until cancelled."""
        while True:
            self._changed.clear()
            try:
                await self.publish()
            except (RedisError, OSError) as exc:
                log.warning("load not published", error=str(exc))
            with contextlib.suppress(TimeoutError):
                # `within`, not `asyncio.wait_for`: on 3.11 wait_for can swallow the
                # cancellation that stops this loop when the event fires at the same time.
                await within(self._interval, self._changed.wait())

    async def withdraw(self) -> None:
        """Remove this pod's sample (it is going away)."""
        with contextlib.suppress(RedisError, OSError):
            await self._client.hdel(self.key, self.pod)
