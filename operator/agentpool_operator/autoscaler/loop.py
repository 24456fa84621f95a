"""The autoscaler: one loop for all pools, not a timer per object.

Every second it reads every pool's load (one pipelined round trip per Redis), decides
with the pure policy (`scaling.decide`) for each pool in mode Operator, posts every
pool's load on the board (which the custom-metrics API serves to the HPAs of mode HPA),
and writes only what changed: replicas through the scale subresource (after draining the
replicas it removes, `scale_down`), its status fields, and an Event per scale.
It runs on the leader only, inside the operator; it reads pools from the same indexes as
the reconcile and never lists anything itself.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from agent_runtime.config.identity import PoolIdentity
from agent_runtime.config.load import (
    LoadSample,
    drain_key,
    load_key,
    stale_after,
    task_queue_keys,
    wake_key,
)
from agent_runtime.config.memory import MemoryConfig
from agentpool_operator import api
from agentpool_operator.autoscaler import metrics, scale_down
from agentpool_operator.autoscaler.board import LoadBoard, PoolLoad
from agentpool_operator.autoscaler.reader import LoadReader, Reading, Target
from agentpool_operator.autoscaler.scaling import Current, Decision, History, Observation, decide
from agentpool_operator.autoscaler.status import (
    MANAGER,
    OWNED_CONDITIONS,
    at,
    condition_events,
    differences,
    status_doc,
    worth_writing,
)
from agentpool_operator.controller.conditions import ConditionTuple
from agentpool_operator.controller.reconcile import ParseCache
from agentpool_operator.controller.status import PoolEvent
from agentpool_operator.kube import KubeApi, KubeError
from agentpool_operator.render import names
from agentpool_operator.render.references import ObjectVersion

log = structlog.get_logger(__name__)

Body = dict[str, Any]

KEY_PREFIX: str = MemoryConfig.model_fields["key_prefix"].default
"""The runtime's Redis key prefix (pools do not set another)."""
PUBLISH_INTERVAL_SECONDS = 1.0
"""What the operator renders as `load.publishIntervalSeconds` (render/config.py)."""
STALE_SECONDS = stale_after(PUBLISH_INTERVAL_SECONDS)
WATCH_LAG_SECONDS = 5.0
"""How long a scale this loop wrote may take to come back through the watch."""


class PoolView(Protocol):
    """What the loop reads of the cluster (the operator's indexes)."""

    def pool_keys(self, namespace: str | None = None) -> list[tuple[str, str]]: ...

    def pool(self, namespace: str | None, name: str) -> Body | None: ...

    def children(self, namespace: str | None, pool: str) -> Mapping[str, Body]: ...

    def objects(self, namespace: str) -> Mapping[tuple[str, str], ObjectVersion]: ...


@dataclass
class PoolState:
    """What the loop remembers of one pool between ticks (lost on restart, by design:
    a new leader starts with an empty history and waits a full window to scale down)."""

    history: History
    pending: scale_down.PendingScaleDown | None = None
    last_written: float | None = None
    last_scale: tuple[str, str] | None = None
    before: History | None = None
    """The history before this tick's decision (restored when its scale is refused)."""
    written: tuple[int, float] | None = None
    """The replicas this loop last wrote, and when."""
    signature: tuple[Any, ...] | None = None
    """What the status last written (or found current) was made of: an equal one next
    tick costs no status document at all."""


@dataclass(frozen=True)
class Seen:
    """One pool as this tick sees it."""

    key: str
    body: Body
    pool: api.AgentPool
    replicas: int | None
    ready: int
    target: Target | None
    why_no_target: str
    counts_queue: bool = False
    """Whether demand counts queued tasks (mode HPA, or signal ActiveTurnsAndQueuedTasks)."""
    light_target: Target | None = None
    """The target without the queue's and wake requests' keys."""

    def reading_target(self) -> Target | None:
        """What this tick reads: the queue itself and the callers waiting for a wake-up
        only while no replica is ready (with ready replicas, their samples carry the
        queue's depth and the callers they refused; without, nobody publishes, and the
        queue and the waiting callers are what wake the pool)."""
        return self.target if self.ready == 0 else self.light_target


def queued_tasks(pool: Seen, reading: Reading, now: float) -> int:
    """The tasks waiting, with signal ActiveTurnsAndQueuedTasks (else 0): the count the
    replicas publish (they read the queue properly), the queue's own length when none
    reports (a pool at zero)."""
    if not pool.counts_queue:
        return 0
    fresh = [s.queued_tasks for s in reading.samples.values() if now - s.at <= STALE_SECONDS]
    return max(fresh, default=reading.queue_length)


def waiting(pool: Seen, reading: Reading, now: float) -> int:
    """The work waiting outside any replica: queued tasks (`queued_tasks`) and callers
    waiting for the pool to wake (read only while no replica is ready)."""
    return queued_tasks(pool, reading, now) + reading.waking


def pool_load(
    samples: Mapping[str, LoadSample], queued: int, ready: int, capacity: int, now: float
) -> tuple[int, int]:
    """(demand, load percent): turns running on replicas that still report and the callers
    they refused for lack of a slot (the policy's demand), plus `queued`."""
    fresh = [s for s in samples.values() if now - s.at <= STALE_SECONDS]
    demand = sum(s.active_turns + s.refused_turns for s in fresh) + queued
    slots = ready * capacity
    return demand, (math.ceil(demand * 100 / slots) if slots else demand * 100)


class Autoscaler:
    """The loop; `tick(now)` is one pass (tests drive it with their own clock)."""

    def __init__(
        self,
        view: PoolView,
        kube: KubeApi,
        *,
        board: LoadBoard,
        default_redis_url: str | None,
        reader: LoadReader | None = None,
        clock: Callable[[], float] = time.time,
        interval: float = 1.0,
    ) -> None:
        self._view = view
        self._kube = kube
        self.board = board
        self._default_redis_url = default_redis_url
        self._reader = reader or LoadReader()
        self._clock = clock
        self._interval = interval
        self._parsed = ParseCache()
        self._states: dict[str, PoolState] = {}
        self._secret_urls: dict[tuple[str, str, str], tuple[str, str | None]] = {}
        self._seen: dict[str, tuple[str, Seen]] = {}
        self._exported: set[str] = set()
        self._urls: dict[str, str] = {}

    def redis_url(self, key: str) -> str | None:
        """The Redis of pool `key` ("namespace/name") as of the last tick (None: unknown,
        or the pool has none): where its wake requests go."""
        return self._urls.get(key)

    async def run(self) -> None:
        """Tick every interval until cancelled."""
        try:
            while True:
                started = self._clock()
                try:
                    await self.tick(started)
                except Exception:
                    log.exception("autoscaler tick failed")
                await asyncio.sleep(max(0.0, self._interval - (self._clock() - started)))
        finally:
            await self._reader.close()

    # ------------------------------------------------------------------ one tick

    async def tick(self, now: float) -> None:
        started = time.perf_counter()
        seen = [s for s in [await self._see(ns, name) for ns, name in self._view.pool_keys()] if s]
        present = {s.key for s in seen}
        for gone in set(self._states) - present:
            del self._states[gone]
        for gone in set(self._seen) - present:
            del self._seen[gone]
        for gone in self._exported - present:
            self._exported.discard(gone)
            namespace, _, name = gone.partition("/")
            with contextlib.suppress(KeyError):
                metrics.forget_pool(namespace, name)
        for gone in set(self.board.keys()) - {s.key for s in seen}:
            self.board.forget(gone)
        self._urls = {s.key: s.target.url for s in seen if s.target is not None}
        targets = [t for t in (s.reading_target() for s in seen) if t is not None]
        readings = await self._reader.read(targets)
        writes: list[Awaitable[None]] = []
        for pool in seen:
            reading = readings.get(pool.key) if pool.target is not None else None
            self._post(pool, reading, now)
            if pool.pool.spec.scaling.mode == "Operator":
                writes.extend(self._autoscale(pool, reading, now))
            elif _has_own_conditions(pool.body):
                writes.append(self._clear_status(pool))
        metrics.POOLS.set(len(seen))
        metrics.TICK_SECONDS.observe(time.perf_counter() - started)
        for result in await asyncio.gather(*writes, return_exceptions=True):
            if isinstance(result, BaseException) and not isinstance(result, KubeError):
                log.error("autoscaler write failed", error=repr(result))
            elif isinstance(result, KubeError):
                log.warning("autoscaler write refused", error=str(result))

    async def _see(self, namespace: str, name: str) -> Seen | None:
        body = self._view.pool(namespace, name)
        if body is None or body.get("metadata", {}).get("deletionTimestamp"):
            return None
        deployment = self._view.children(namespace, name).get("Deployment") or {}
        ready = deployment.get("status", {}).get("readyReplicas") or 0
        ready = ready if isinstance(ready, int) else 0
        key = f"{namespace}/{name}"
        version = body.get("metadata", {}).get("resourceVersion")
        known = self._seen.get(key)
        # The same object as last tick (most ticks): reuse its parse and Redis target.
        # A pool whose Redis URL is in a Secret is looked at again: the Secret may change.
        if known is not None and version is not None and known[0] == version:
            return dataclasses.replace(known[1], ready=ready)
        found = await self._see_anew(namespace, name, body, key, ready)
        if found is not None:
            metrics.export_pool(namespace, name, body, found.pool.spec.scaling.max_replicas)
            self._exported.add(key)
        if found is not None and version is not None and _url_is_stable(found.pool):
            self._seen[key] = (version, found)
        return found

    async def _see_anew(
        self, namespace: str, name: str, body: Body, key: str, ready: int
    ) -> Seen | None:
        pool = next(iter(self._parsed.pools([body])), None)
        if pool is None:
            return None
        replicas = body.get("spec", {}).get("replicas")
        url, why = await self._redis_url(pool)
        scaling = pool.spec.scaling
        # Mode HPA has no signal setting: its load counts the queue, as the demand
        # does (turns alone cap the load at 100 % of ready replicas).
        counts_queue = scaling.mode == "HPA" or (
            scaling.mode == "Operator"
            and scaling.operator_settings.signal == "ActiveTurnsAndQueuedTasks"
        )
        target = light = None
        if url is not None:
            identity = PoolIdentity(namespace=namespace, name=name)
            light = Target(
                key=key,
                url=url,
                load_key=load_key(KEY_PREFIX, identity),
                drain_key=drain_key(KEY_PREFIX, identity),
                queue_keys=None,
            )
            queue = task_queue_keys(KEY_PREFIX, identity) if counts_queue else None
            target = dataclasses.replace(
                light, queue_keys=queue, wake_key=wake_key(KEY_PREFIX, identity)
            )
        return Seen(
            key=key,
            body=body,
            pool=pool,
            replicas=replicas if isinstance(replicas, int) else None,
            ready=ready,
            target=target,
            why_no_target=why,
            counts_queue=counts_queue,
            light_target=light,
        )

    async def _redis_url(self, pool: api.AgentPool) -> tuple[str | None, str]:
        """The pool's Redis, as its replicas reach it (render/config.py's rule)."""
        connection = pool.spec.memory.redis
        if connection is None:
            if self._default_redis_url is None:
                return None, "the pool has no Redis (memory.redis) and the operator no default"
            return self._default_redis_url, ""
        if connection.url is not None:
            return connection.url, ""
        ref = connection.url_secret_ref
        assert ref is not None
        namespace = pool.metadata.namespace or "default"
        known = self._view.objects(namespace).get(("Secret", ref.name))
        if known is None:
            return None, f"Secret {ref.name} (memory.redis.urlSecretRef) does not exist"
        cache_key = (namespace, ref.name, ref.key)
        cached = self._secret_urls.get(cache_key)
        if cached is None or cached[0] != known.resource_version:
            secret = await self._kube.get_secret(namespace, ref.name)
            raw = ((secret or {}).get("data") or {}).get(ref.key)
            url = base64.b64decode(raw).decode().strip() if raw else None
            cached = (known.resource_version, url)
            self._secret_urls[cache_key] = cached
        if cached[1] is None:
            return None, f"Secret {ref.name} has no key {ref.key} (memory.redis.urlSecretRef)"
        return cached[1], ""

    def _post(self, pool: Seen, reading: Reading | None, now: float) -> None:
        if reading is None:
            self.board.forget(pool.key)
            return
        demand, percent = pool_load(
            reading.samples,
            waiting(pool, reading, now),
            pool.ready,
            pool.pool.spec.concurrency_per_replica,
            now,
        )
        self.board.put(pool.key, PoolLoad(demand, percent, pool.ready, now))

    # ------------------------------------------------------------------ mode Operator

    def _autoscale(self, pool: Seen, reading: Reading | None, now: float) -> list[Awaitable[None]]:
        if pool.replicas is None:
            return []  # the reconcile writes the first replicas
        state = self._states.get(pool.key)
        if state is None:
            state = PoolState(history=History(started_at=now), last_scale=_last_scale(pool.body))
            self._states[pool.key] = state
        written = state.written
        if written is not None and pool.replicas != written[0]:
            if now - written[1] < WATCH_LAG_SECONDS:
                # Our own write, not yet back through the watch: judge from what we wrote,
                # or the same scale would be written (and announced) twice.
                pool = dataclasses.replace(pool, replicas=written[0])
            else:
                state.written = None  # someone else has scaled it since
        writes: list[Awaitable[None]] = []
        state.before = None
        annotations = pool.pool.metadata.annotations
        pinned = annotations.get(api.PAUSED_REPLICAS_ANNOTATION)
        paused = annotations.get(api.PAUSED_ANNOTATION, "").lower() == "true"
        spec = pool.pool.spec.scaling
        samples = reading.samples if reading is not None else {}
        conditions: list[ConditionTuple]
        decision = None
        if pinned is not None or paused:
            if state.pending is not None:
                writes.append(self._cancel(pool, state))
            conditions = [("ScalingActive", "False", "Paused", "scaling paused by annotation")]
            if pinned is not None:
                wanted = _pinned(pinned, spec)
                conditions = [("ScalingActive", "False", "Pinned", f"replicas pinned to {wanted}")]
                if wanted is not None and wanted != pool.replicas:
                    writes.append(self._scale(pool, state, wanted, "pinned by annotation", now))
            conditions += [
                ("ScalingLimited", "False", "Paused", ""),
                ("Fallback", "False", "Paused", ""),
            ]
        else:
            decision = self._decide(pool, state, reading, now)
            writes.extend(
                self._apply(pool, state, decision.replicas, decision.reason, samples, now)
            )
            conditions = _conditions(decision, pool)
        demand, percent = None, None
        if reading is not None:
            demand, percent = pool_load(
                samples,
                waiting(pool, reading, now),
                pool.ready,
                pool.pool.spec.concurrency_per_replica,
                now,
            )
        up = decision.up_blocked_until if decision else None
        down = decision.down_blocked_until if decision else None
        signature = (
            demand,
            percent,
            state.last_scale,
            up if up is not None and up > now else None,
            down if down is not None and down > now else None,
            tuple(conditions),
            pool.pool.metadata.generation,
        )
        if signature == state.signature:
            return writes  # what was last written or found current still is
        previous = pool.body.get("status") or {}
        doc = status_doc(
            demand=demand,
            load_percent=percent,
            last_scale=state.last_scale,
            up_blocked_until=up,
            down_blocked_until=down,
            conditions=conditions,
            previous=previous,
            generation=pool.pool.metadata.generation,
            now=now,
        )
        changed = differences(previous, doc)
        if worth_writing(changed, state.last_written, now):
            state.last_written = now
            state.signature = signature
            writes.append(self._write_status(pool, doc, condition_events(previous, doc)))
        elif not changed:
            state.signature = signature
        return writes

    def _decide(
        self, pool: Seen, state: PoolState, reading: Reading | None, now: float
    ) -> Decision:
        """The policy's decision; with a scale-down between its steps, the policy sees
        the replicas it is going to (so that it does not record that step twice)."""
        replicas = pool.replicas
        assert replicas is not None
        believed = state.pending.target if state.pending is not None else replicas
        queued = queued_tasks(pool, reading, now) if reading is not None else 0
        observation = Observation(
            samples=tuple(reading.samples.values()) if reading is not None else None,
            queued_tasks=queued,
            stale_after=STALE_SECONDS,
            waking=reading.waking if reading is not None else 0,
        )
        decision = decide(
            pool.pool.spec.scaling,
            pool.pool.spec.concurrency_per_replica,
            Current(replicas=believed, ready=pool.ready),
            observation,
            state.history,
            now,
        )
        # Kept until the scale is written: a refused write must not use up the step limits.
        state.before = state.history
        state.history = decision.history
        return decision

    def _apply(
        self,
        pool: Seen,
        state: PoolState,
        wanted: int,
        reason: str,
        samples: Mapping[str, LoadSample],
        now: float,
    ) -> list[Awaitable[None]]:
        replicas = pool.replicas
        assert replicas is not None
        pending = state.pending
        writes: list[Awaitable[None]] = []
        if pending is not None and (pending.from_replicas != replicas or wanted != pending.target):
            # Someone else scaled the pool, or the load changed its mind: start over.
            writes.append(self._cancel(pool, state))
            pending = None
        if wanted > replicas:
            writes.append(self._scale(pool, state, wanted, reason, now))
        elif wanted < replicas:
            if pending is None:
                writes.append(self._begin_scale_down(pool, state, wanted, reason, samples, now))
            elif scale_down.acknowledged(pending, samples, now, STALE_SECONDS):
                state.pending = None
                writes.append(self._scale(pool, state, pending.target, pending.reason, now))
        return writes

    # ------------------------------------------------------------------ writes

    async def _scale(
        self, pool: Seen, state: PoolState, replicas: int, reason: str, now: float
    ) -> None:
        meta = pool.pool.metadata
        assert meta.namespace is not None
        assert pool.replicas is not None
        before = pool.replicas
        try:
            await self._kube.scale(meta.namespace, meta.name, replicas, manager=MANAGER)
        except KubeError:
            if state.before is not None:
                state.history = state.before
            raise
        state.written = (replicas, now)
        direction = "up" if replicas > before else "down"
        metrics.SCALES.labels(direction).inc()
        message = f"{before} -> {replicas}: {reason}"
        state.last_scale = (at(now), message[:1024])
        log.info("scaled", pool=pool.key, replicas=replicas, before=before, reason=reason)
        await self._event(pool, PoolEvent("Normal", f"Scaled{direction.title()}", message))

    async def _begin_scale_down(
        self,
        pool: Seen,
        state: PoolState,
        target: int,
        reason: str,
        samples: Mapping[str, LoadSample],
        now: float,
    ) -> None:
        replicas = pool.replicas
        assert replicas is not None
        # Recorded before the first await: the next tick must not start another one.
        pending = scale_down.PendingScaleDown(
            target=target, from_replicas=replicas, pods=(), asked_at=now, reason=reason
        )
        state.pending = pending
        chosen = scale_down.choose(samples, replicas - target, now, STALE_SECONDS)
        chosen = [pod for pod in chosen if await self._mark(pool, pod)]
        if pool.target is not None and chosen:
            await self._reader.request_drain(
                pool.target.url, pool.target.drain_key, chosen, now + scale_down.REQUEST_SECONDS
            )
        if state.pending is pending:
            state.pending = dataclasses.replace(pending, pods=tuple(chosen))
        log.info("draining before scale-down", pool=pool.key, pods=chosen, target=target)

    async def _mark(self, pool: Seen, pod: str) -> bool:
        """Give a chosen pod the lowest deletion cost, after checking that it is this
        pool's (the name comes from Redis, which the pool's own code writes)."""
        namespace = pool.pool.metadata.namespace
        assert namespace is not None
        found = await self._kube.get_pod(namespace, pod)
        if found is None:
            return False
        labels = found.get("metadata", {}).get("labels") or {}
        wanted = names.selector_labels(pool.pool.metadata.name)
        if any(labels.get(k) != v for k, v in wanted.items()):
            log.warning("a load sample names a pod of another pool", pool=pool.key, pod=pod)
            return False
        uid = found["metadata"]["uid"]
        await self._kube.annotate_pod(
            namespace, pod, uid, {scale_down.DELETION_COST_ANNOTATION: scale_down.CHOSEN_COST}
        )
        return True

    async def _cancel(self, pool: Seen, state: PoolState) -> None:
        pending = state.pending
        state.pending = None
        if pending is None or pool.target is None:
            return
        await self._reader.withdraw_drain(pool.target.url, pool.target.drain_key, pending.pods)
        namespace = pool.pool.metadata.namespace
        assert namespace is not None
        for pod in pending.pods:
            found = await self._kube.get_pod(namespace, pod)
            if found is not None:
                uid = found["metadata"]["uid"]
                removal = {scale_down.DELETION_COST_ANNOTATION: None}
                await self._kube.annotate_pod(namespace, pod, uid, removal)

    async def _write_status(
        self, pool: Seen, doc: Mapping[str, Any], events: list[PoolEvent]
    ) -> None:
        meta = pool.pool.metadata
        assert meta.namespace is not None
        await self._kube.apply_status("AgentPool", meta.namespace, meta.name, doc, manager=MANAGER)
        for event in events:
            await self._event(pool, event)

    async def _clear_status(self, pool: Seen) -> None:
        """A pool that left mode Operator: remove the autoscaler's fields and conditions."""
        meta = pool.pool.metadata
        assert meta.namespace is not None
        await self._kube.apply_status(
            "AgentPool", meta.namespace, meta.name, {"conditions": []}, manager=MANAGER
        )

    async def _event(self, pool: Seen, event: PoolEvent) -> None:
        with contextlib.suppress(KubeError):
            await self._kube.event(
                pool.pool, type_=event.type, reason=event.reason, message=event.message
            )


def _url_is_stable(pool: api.AgentPool) -> bool:
    """Whether the pool's Redis URL changes only with the pool (not through a Secret)."""
    redis = pool.spec.memory.redis
    return redis is None or redis.url is not None


def _has_own_conditions(body: Body) -> bool:
    conditions = (body.get("status") or {}).get("conditions") or []
    return any(isinstance(c, dict) and c.get("type") in OWNED_CONDITIONS for c in conditions)


def _last_scale(body: Body) -> tuple[str, str] | None:
    status = body.get("status") or {}
    when, why = status.get("lastScaleTime"), status.get("lastScaleReason")
    return (str(when), str(why)) if when and why else None


def _pinned(value: str, spec: api.ScalingSpec) -> int | None:
    try:
        wanted = int(value)
    except ValueError:
        return None
    return min(max(wanted, spec.min_replicas), spec.max_replicas)


def _conditions(decision: Decision, pool: Seen) -> list[ConditionTuple]:
    # Messages stay the same while the state does: a message that moved with every tick
    # would be a status write every tick.
    spec = pool.pool.spec.scaling
    if pool.target is None:
        active: ConditionTuple = ("ScalingActive", "False", "NoLoadSignal", pool.why_no_target)
    elif not decision.load_known:
        active = (
            "ScalingActive",
            "False",
            "LoadUnavailable",
            "the pool's load cannot be read from its Redis",
        )
    else:
        active = ("ScalingActive", "True", "LoadRead", "the load is read every second")
    if not decision.limited:
        limited: ConditionTuple = ("ScalingLimited", "False", "WithinRange", "")
    elif decision.replicas >= spec.max_replicas:
        limited = (  # the HPA's names: the load wants too many replicas
            "ScalingLimited",
            "True",
            "TooManyReplicas",
            f"the load asks for more than maxReplicas ({spec.max_replicas})",
        )
    else:
        limited = (
            "ScalingLimited",
            "True",
            "TooFewReplicas",
            f"the load asks for fewer than minReplicas ({spec.min_replicas})",
        )
    if decision.fallback:
        fallback: ConditionTuple = (
            "Fallback",
            "True",
            "LoadUnavailable",
            f"the load cannot be read: the pool is at its fallback size ({decision.replicas})",
        )
    else:
        fallback = ("Fallback", "False", "NotNeeded", "")
    return [active, limited, fallback]
