"""Leader election on a `coordination.k8s.io/v1` Lease: one active operator out of N.

Why our own and not kopf's peering: kopf's peering makes operators of equal priority
freeze each other (both pause), so two replicas of one Deployment would both stand still.
Why not a library: none of the Python ones is well kept. This follows client-go's
`leaderelection` closely, so its behaviour is the one Kubernetes users know:

- a candidate takes the Lease when it is free (no holder, or released) or when its
  record has not changed for `leaseDurationSeconds` as measured on the candidate's own
  clock from when it first saw that record (never by comparing wall clocks across
  machines, which may be skewed);
- the leader rewrites the record every `retry_period`; when it has not managed to for
  `renew_deadline`, or sees another holder, it has lost and must stop working at once
  (controller-runtime's way: the process exits and its pod restarts as a standby);
- a clean release empties the holder, so a standby takes over at its next try;
- every write carries the `resourceVersion` read just before it, so two candidates
  racing for a free Lease cannot both win: the API server refuses the second (409).

The decisions are pure functions of the observed record and the time (`may_take`,
`next_record`, `renewal_overdue`); `LeaseElector` is the I/O around them, on the sync
`kubernetes` client run in a thread. It counts its Lease writes (`writes`) so that a test
of the operator's write silence can subtract them, and exports them as a metric.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any

import structlog
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from prometheus_client import Counter
from urllib3.exceptions import HTTPError

log = structlog.get_logger(__name__)

LEASE_NAME = "agentpool-operator"
"""The Lease the operator's replicas elect a leader on, in the operator's namespace (the
chart's Role grants get/create/update on Leases there)."""

LEASE_WRITES = Counter(
    "agentpool_operator_leader_lease_writes_total",
    "Writes to the leader-election Lease by this process (acquire, renew, release).",
    ["kind"],
)
LEADER_TRANSITIONS = Counter(
    "agentpool_operator_leader_acquired_total",
    "Times this process became the leader.",
)


# What a Lease request can fail with: the API server's answer, or no answer at all.
_FAILURES = (ApiException, HTTPError, OSError)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ApiException):
        return f"HTTP {exc.status} {exc.reason}"
    return f"{type(exc).__name__}: {exc}"


class LeadershipLostError(RuntimeError):
    """This process held the Lease and no longer does: stop working now."""


@dataclass(frozen=True)
class LeaseTiming:
    """client-go's defaults: 15 s lease, 10 s renew deadline, 2 s retry period."""

    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        # client-go refuses the same: a leader must give up before others may take over,
        # and must get a few tries before it gives up.
        if not self.lease_duration > self.renew_deadline:
            raise ValueError("lease_duration must be greater than renew_deadline")
        if not self.renew_deadline > self.retry_period * 1.2:
            raise ValueError("renew_deadline must be greater than 1.2 * retry_period")
        if self.retry_period <= 0:
            raise ValueError("retry_period must be positive")


@dataclass(frozen=True)
class LeaseRecord:
    """The Lease's spec, the part leader election reads and writes."""

    holder: str = ""
    lease_duration_seconds: int = 0
    acquire_time: datetime | None = None
    renew_time: datetime | None = None
    transitions: int = 0


def may_take(record: LeaseRecord | None, identity: str, *, observed_at: float, now: float) -> bool:
    """Whether `identity` may write itself as holder of a Lease whose record is `record`.

    `observed_at` is when (on this process's monotonic clock) `record` was first seen in
    its current form; `now` is the same clock. No record: the Lease does not exist yet.
    """
    if record is None or not record.holder or record.holder == identity:
        return True
    return now >= observed_at + record.lease_duration_seconds


def next_record(
    old: LeaseRecord | None, identity: str, *, now: datetime, lease_duration: float
) -> LeaseRecord:
    """The record `identity` writes to take or renew the Lease at wall time `now`."""
    duration = max(1, round(lease_duration))
    if old is not None and old.holder == identity:
        return replace(old, lease_duration_seconds=duration, renew_time=now)
    transitions = 0 if old is None else old.transitions + (1 if old.holder else 0)
    return LeaseRecord(
        holder=identity,
        lease_duration_seconds=duration,
        acquire_time=now,
        renew_time=now,
        transitions=transitions,
    )


def released_record(old: LeaseRecord, *, now: datetime) -> LeaseRecord:
    """What a leader writes when it steps down cleanly (client-go's release)."""
    return LeaseRecord(
        holder="",
        lease_duration_seconds=1,
        acquire_time=now,
        renew_time=now,
        transitions=old.transitions,
    )


def renewal_overdue(last_renewed: float, now: float, timing: LeaseTiming) -> bool:
    """Whether a leader that last renewed at `last_renewed` must consider itself lost."""
    return now - last_renewed >= timing.renew_deadline


def _micro_time(value: datetime | None) -> str | None:
    # MicroTime's wire format; datetime.isoformat() drops the fraction when it is zero.
    return None if value is None else value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _record_of(lease: Any) -> LeaseRecord:
    spec = lease.spec
    if spec is None:
        return LeaseRecord()
    return LeaseRecord(
        holder=spec.holder_identity or "",
        lease_duration_seconds=spec.lease_duration_seconds or 0,
        acquire_time=spec.acquire_time,
        renew_time=spec.renew_time,
        transitions=spec.lease_transitions or 0,
    )


class LeaseElector:
    """One candidate for one Lease. `acquire()`, then `hold()`; `release()` to step down.

    Cancelling `hold()` stops renewing without releasing (as a crash would): the others
    take over when the lease expires.
    """

    def __init__(
        self,
        api: client.ApiClient,
        *,
        namespace: str,
        name: str,
        identity: str,
        timing: LeaseTiming | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if not identity:
            raise ValueError("the leader-election identity must not be empty")
        self._leases = client.CoordinationV1Api(api)
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.timing = timing or LeaseTiming()
        self._clock = clock
        self._wall_clock = wall_clock
        self._observed: LeaseRecord | None = None
        self._observed_at = 0.0
        self._last_renewed: float | None = None
        self.writes = 0
        """Successful Lease writes by this elector (create, take, renew, release)."""
        self._log = log.bind(lease=f"{namespace}/{name}", identity=identity)

    @property
    def is_leader(self) -> bool:
        return self._last_renewed is not None

    async def acquire(self) -> None:
        """Return once this identity holds the Lease (tries every retry period)."""
        # Polling is the protocol: a Lease cannot be watched for expiry.
        while not await self._try_acquire_or_renew():  # noqa: ASYNC110
            await asyncio.sleep(self.timing.retry_period)
        LEADER_TRANSITIONS.inc()
        self._log.info("leader_elected")

    async def hold(self) -> None:
        """Renew the held Lease until leadership is lost, then raise LeadershipLostError.

        Never returns normally; cancel it to stop renewing without releasing.
        """
        if self._last_renewed is None:
            raise LeadershipLostError("hold() called without holding the Lease")
        while True:
            await asyncio.sleep(self.timing.retry_period)
            renewed = await self._try_acquire_or_renew()
            now = self._clock()
            if renewed:
                continue
            if self._observed is not None and self._observed.holder not in ("", self.identity):
                self._last_renewed = None
                self._log.warning("leadership_lost", holder=self._observed.holder)
                raise LeadershipLostError(f"the Lease is now held by {self._observed.holder}")
            last = self._last_renewed
            if last is None or renewal_overdue(last, now, self.timing):
                self._last_renewed = None
                self._log.warning("leadership_lost", reason="renew deadline passed")
                raise LeadershipLostError(
                    f"could not renew the Lease within {self.timing.renew_deadline}s"
                )

    async def release(self) -> bool:
        """Step down: empty the holder if this identity still holds it. True if released."""
        self._last_renewed = None
        try:
            lease = await asyncio.to_thread(self._read)
        except _FAILURES as exc:
            self._log.warning("lease_release_failed", error=_describe(exc))
            return False
        old = _record_of(lease)
        if old.holder != self.identity:
            return False
        body = self._body(released_record(old, now=self._wall_clock()), lease.metadata)
        try:
            await self._write("release", partial(self._replace, body))
        except _FAILURES as exc:
            self._log.warning("lease_release_failed", error=_describe(exc))
            return False
        self._log.info("leader_released")
        return True

    async def _try_acquire_or_renew(self) -> bool:
        """One round of client-go's tryAcquireOrRenew; True if we hold the Lease after it."""
        now = self._clock()
        try:
            lease = await asyncio.to_thread(self._read)
        except _FAILURES as exc:
            if isinstance(exc, ApiException) and exc.status == 404:
                return await self._create_lease(now)
            self._log.warning("lease_read_failed", error=_describe(exc))
            return False
        record = _record_of(lease)
        if record != self._observed:
            self._observed, self._observed_at = record, now
        if not may_take(record, self.identity, observed_at=self._observed_at, now=now):
            return False
        new = next_record(
            record,
            self.identity,
            now=self._wall_clock(),
            lease_duration=self.timing.lease_duration,
        )
        kind = "renew" if record.holder == self.identity else "take"
        try:
            updated = await self._write(
                kind, partial(self._replace, self._body(new, lease.metadata))
            )
        except _FAILURES as exc:
            # 409: someone else wrote first; the next round reads their record.
            self._log.info("lease_write_failed", error=_describe(exc), kind=kind)
            return False
        self._after_write(updated, now)
        return True

    async def _create_lease(self, now: float) -> bool:
        new = next_record(
            None, self.identity, now=self._wall_clock(), lease_duration=self.timing.lease_duration
        )
        meta = client.V1ObjectMeta(name=self.name, namespace=self.namespace)
        try:
            body = self._body(new, meta)
            created = await self._write("create", partial(self._create, body))
        except _FAILURES as exc:
            self._log.info("lease_write_failed", error=_describe(exc), kind="create")
            return False
        self._after_write(created, now)
        return True

    def _after_write(self, lease: Any, now: float) -> None:
        self._observed, self._observed_at = _record_of(lease), now
        self._last_renewed = now

    async def _write(self, kind: str, request: Callable[[], Any]) -> Any:
        """One Lease write, counted in its thread as soon as the server accepted it: a
        cancelled caller (the leader stopping) must not leave a write uncounted."""

        def write() -> Any:
            result = request()
            self.writes += 1
            LEASE_WRITES.labels(kind=kind).inc()
            return result

        return await asyncio.to_thread(write)

    # Every request is bounded by the renew deadline (as client-go's context is): a hung
    # API server must not keep a leader believing it still leads.
    def _read(self) -> Any:
        return self._leases.read_namespaced_lease(
            self.name, self.namespace, _request_timeout=self.timing.renew_deadline
        )

    def _replace(self, body: Any) -> Any:
        return self._leases.replace_namespaced_lease(
            self.name, self.namespace, body, _request_timeout=self.timing.renew_deadline
        )

    def _create(self, body: Any) -> Any:
        return self._leases.create_namespaced_lease(
            self.namespace, body, _request_timeout=self.timing.renew_deadline
        )

    def _body(self, record: LeaseRecord, meta: Any) -> Any:
        # A dict, not a V1Lease: the client sends it as is, so the times keep MicroTime's
        # wire format (a V1Lease's datetimes go through isoformat()).
        metadata: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if getattr(meta, "resource_version", None):
            metadata["resourceVersion"] = meta.resource_version
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": {
                "holderIdentity": record.holder or None,
                "leaseDurationSeconds": record.lease_duration_seconds,
                "acquireTime": _micro_time(record.acquire_time),
                "renewTime": _micro_time(record.renew_time),
                "leaseTransitions": record.transitions,
            },
        }


async def acquire(
    api: client.ApiClient,
    *,
    namespace: str,
    name: str,
    identity: str,
    timing: LeaseTiming | None = None,
) -> LeaseElector:
    """Wait until `identity` holds the Lease; return the elector to `hold()` it with."""
    elector = LeaseElector(api, namespace=namespace, name=name, identity=identity, timing=timing)
    await elector.acquire()
    return elector


async def hold(elector: LeaseElector) -> None:
    """Renew the Lease; raises LeadershipLostError when leadership is lost."""
    await elector.hold()


Work = Callable[[asyncio.Event], Coroutine[Any, Any, None]]
"""What a leader runs: a coroutine that returns soon after its `stop` event is set."""


async def lead(elector: LeaseElector, work: Work) -> None:
    """Wait for leadership, then run `work(stop)` while holding the Lease.

    - Leadership lost: `stop` is set, `work` gets the time between the renew deadline and
      the lease's expiry to finish (after that another replica may start), is cancelled
      if still running, and LeadershipLostError is raised: exit, and let the pod restart
      as a standby (controller-runtime's way; a process that led once never leads again).
    - `work` returns (a clean shutdown): the Lease is released, so a standby takes over
      at its next try rather than after a lease.
    - Cancelled (SIGTERM handling that cancels the task): `stop` is set, `work` gets the
      same grace, the Lease is released.

    main.py: `await lead(elector, lambda stop: run(settings, stop))`.
    """
    await elector.acquire()
    stop = asyncio.Event()
    working = asyncio.create_task(work(stop), name="leader-work")
    holding = asyncio.create_task(elector.hold(), name="leader-lease")
    grace = elector.timing.lease_duration - elector.timing.renew_deadline
    try:
        await asyncio.wait({working, holding}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        holding.cancel()
        await _stop(working, stop, grace)
        await asyncio.shield(elector.release())
        raise
    if holding.done():
        await _stop(working, stop, grace)
        holding.result()  # raises LeadershipLostError
        raise LeadershipLostError("the Lease renewal stopped")  # hold() never returns
    holding.cancel()
    await elector.release()
    working.result()  # the work's own error, if it failed


async def _stop(working: asyncio.Task[None], stop: asyncio.Event, grace: float) -> None:
    stop.set()
    done, _ = await asyncio.wait({working}, timeout=grace)
    if not done:
        working.cancel()
        await asyncio.wait({working})
    elif not working.cancelled() and working.exception() is not None:
        log.warning("leader_work_failed_while_stopping", error=repr(working.exception()))
