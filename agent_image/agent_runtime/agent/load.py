"""Publishes this replica's load for the autoscaler (layout: `agent_runtime.config.load`).

On every change of the admission (a turn starts or ends, a caller is refused for lack of
a slot, draining begins) and at least
every `load.publishIntervalSeconds`, one Lua script writes this pod's sample, deletes
dead pods' samples and renews the hash's expiry, atomically, and answers the
autoscaler's drain request for this pod, if any: the replica drains while the request
stands and takes turns again when it lapses. Changes that arrive while a
write is in flight, or less than `MIN_GAP_SECONDS` after it, are folded into the next
one: under steady traffic a replica writes about 20 samples a second, not two per turn
(a turn's start and end were two of the five Redis round trips a turn cost), and the
autoscaler, which reads once a second, sees every change at most 50 ms late. Redis
being down costs nothing but the signal: the replica keeps serving, the publication
resumes when Redis is back.
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
from agent_runtime.cancellation import stop_if_cancelled
from agent_runtime.config.load import (
    DrainRequest,
    LoadSample,
    decode_drain_request,
    encode_sample,
    stale_after,
)
from agent_runtime.resilience.deadline import within

log = structlog.get_logger(__name__)

MIN_GAP_SECONDS = 0.05
"""The least time between two writes: a twentieth of the autoscaler's one-second tick."""

# KEYS: the pool's load hash, its drain-request hash. ARGV: pod, sample JSON, now, stale
# seconds, expiry ms. Returns this pod's drain request (or false): reading it here costs
# no extra round trip.
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
return redis.call('HGET', KEYS[2], ARGV[1])
"""


class LoadPublisher:
    """Keeps this pod's field of the pool's load hash current."""

    def __init__(
        self,
        client: Redis,
        key: str,
        drain_key: str,
        pod: str,
        admission: Admission,
        *,
        interval: float,
        min_gap: float = MIN_GAP_SECONDS,
        queued_tasks: Callable[[], int] = lambda: 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self.key = key
        self.drain_key = drain_key
        self._drain_until: float | None = None
        self.pod = pod
        self._admission = admission
        self._interval = interval
        self._min_gap = min_gap
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
            refused_turns=len(self._admission.refusals),
        )

    async def publish(self) -> None:
        """Write the current sample now."""
        sample = self.sample()
        stale = stale_after(self._interval)
        request = await self._script(
            keys=[self.key, self.drain_key],
            args=[self.pod, encode_sample(sample), sample.at, stale, int(stale * 1000)],
        )
        self.published += 1
        self._follow(decode_drain_request(request or None), self._clock())

    def _follow(self, request: DrainRequest | None, now: float) -> None:
        self._drain_until = request.until if request is not None else None
        self._lapse(now)

    def _lapse(self, now: float) -> None:
        # Also called when Redis cannot be reached: a request lapses at its `until` even
        # if the replica can no longer read it, so an outage never strands it unready.
        if self._drain_until is not None and self._drain_until > now:
            self._admission.drain("scale-down")
        else:
            self._admission.resume("scale-down")

    async def run(self) -> None:
        """Publish on every change and every interval, until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            self._changed.clear()
            written = loop.time()
            try:
                await self.publish()
            except (RedisError, OSError) as exc:
                log.warning("load not published", error=str(exc))
                self._lapse(self._clock())
            stop_if_cancelled()
            with contextlib.suppress(TimeoutError):
                # `within`, not `asyncio.wait_for`: on 3.11 wait_for can swallow the
                # cancellation that stops this loop when the event fires at the same time.
                await within(self._interval, self._changed.wait())
            rest = self._min_gap - (loop.time() - written)
            if rest > 0:
                await asyncio.sleep(rest)  # pacing the writes; the changes meanwhile are kept

    async def withdraw(self) -> None:
        """Remove this pod's sample (it is going away)."""
        with contextlib.suppress(RedisError, OSError):
            await self._client.hdel(self.key, self.pod)
