"""Leader election on a real Lease: one leader, takeover after a crash, handover on release."""

from __future__ import annotations

import asyncio
import time

import pytest
from kubernetes import client, config

from agentpool_operator.leader import LeadershipLostError, LeaseElector, LeaseTiming, Work, lead
from tests.support.audit import AuditWindow, audit_log_path, flush
from tests.support.cluster import TEST_CLUSTER, Cluster
from tests.support.wait import async_wait_until

# Short, so the test is quick; the same ratios as client-go's 15/10/2.
TIMING = LeaseTiming(lease_duration=4.0, renew_deadline=3.0, retry_period=0.5)
LEASE = "agentpool-operator-leader"


def _elector(cluster: Cluster, namespace: str, identity: str) -> LeaseElector:
    # Each candidate with its own client, as two processes would have.
    api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    return LeaseElector(api, namespace=namespace, name=LEASE, identity=identity, timing=TIMING)


def _lease(api: client.ApiClient, namespace: str) -> client.V1Lease:
    return client.CoordinationV1Api(api).read_namespaced_lease(LEASE, namespace)


async def _still_pending(task: asyncio.Task[None], seconds: float) -> bool:
    done, _ = await asyncio.wait({task}, timeout=seconds)
    return not done


async def test_the_standby_takes_over_within_the_lease_after_the_leader_dies(
    cluster: Cluster, kube_api: client.ApiClient, namespace: str
) -> None:
    leader = _elector(cluster, namespace, "op-a")
    standby = _elector(cluster, namespace, "op-b")
    await asyncio.wait_for(leader.acquire(), timeout=10)
    holding = asyncio.create_task(leader.hold())
    waiting = asyncio.create_task(standby.acquire())
    try:
        # While the leader renews, the standby stays a standby for longer than a lease.
        assert await _still_pending(waiting, TIMING.lease_duration * 1.5)
        assert _lease(kube_api, namespace).spec.holder_identity == "op-a"
        renewals = leader.writes
        assert renewals >= TIMING.lease_duration * 1.5 / TIMING.retry_period / 2

        # The leader dies without releasing (a crash: it just stops renewing).
        holding.cancel()
        died = time.monotonic()
        await asyncio.wait_for(waiting, timeout=TIMING.lease_duration + 2 * TIMING.retry_period + 5)
        took = time.monotonic() - died
        # At most a lease from the last renewal the standby saw, plus its polling.
        assert took <= TIMING.lease_duration + 2 * TIMING.retry_period + 1.0, took
        spec = _lease(kube_api, namespace).spec
        assert spec.holder_identity == "op-b"
        assert spec.lease_transitions == 1
        assert standby.is_leader
    finally:
        for task in (holding, waiting):
            task.cancel()


async def test_a_clean_release_hands_over_at_once(
    cluster: Cluster, kube_api: client.ApiClient, namespace: str
) -> None:
    leader = _elector(cluster, namespace, "op-a")
    standby = _elector(cluster, namespace, "op-b")
    await asyncio.wait_for(leader.acquire(), timeout=10)
    waiting = asyncio.create_task(standby.acquire())
    try:
        assert await _still_pending(waiting, 2 * TIMING.retry_period)
        assert await leader.release()
        released = time.monotonic()
        await asyncio.wait_for(waiting, timeout=TIMING.lease_duration)
        # Well within a lease: the standby's next try after the release.
        assert time.monotonic() - released <= 2 * TIMING.retry_period + 1.0
        assert _lease(kube_api, namespace).spec.holder_identity == "op-b"
        assert not leader.is_leader
    finally:
        waiting.cancel()


async def test_the_leader_learns_it_lost_when_another_holds_the_lease(
    cluster: Cluster, kube_api: client.ApiClient, namespace: str
) -> None:
    leader = _elector(cluster, namespace, "op-a")
    await asyncio.wait_for(leader.acquire(), timeout=10)
    holding = asyncio.create_task(leader.hold())
    try:
        # Someone else (an operator that thinks the lease expired) overwrites it.
        client.CoordinationV1Api(kube_api).patch_namespaced_lease(
            LEASE, namespace, {"spec": {"holderIdentity": "op-z"}}
        )
        with pytest.raises(LeadershipLostError, match="op-z"):
            await asyncio.wait_for(holding, timeout=TIMING.renew_deadline + 2)
        assert not leader.is_leader
    finally:
        holding.cancel()


async def test_the_counted_lease_writes_are_the_ones_the_audit_log_sees(
    cluster: Cluster, kube_api: client.ApiClient, namespace: str
) -> None:
    log = audit_log_path(TEST_CLUSTER)
    window = AuditWindow.starting_now(log, user="kwok-admin")
    leader = _elector(cluster, namespace, "op-a")
    await asyncio.wait_for(leader.acquire(), timeout=10)
    assert leader.writes == 1  # the create
    holding = asyncio.create_task(leader.hold())
    try:
        await async_wait_until(lambda: _now(leader.writes >= 5), timeout=10, what="four renewals")
    finally:
        holding.cancel()
    assert await leader.release()
    window.close()
    flush(log, kube_api)
    lease_writes = [
        e
        for e in window.events()
        if e.is_lease and e.namespace == namespace and e.name == LEASE and e.code < 300
    ]
    # create + renewals + release, each one request; a later audit test subtracts these.
    assert len(lease_writes) == leader.writes
    assert {e.verb for e in lease_writes} == {"create", "update"}


async def _now(value: bool) -> bool:
    return value


class Activity:
    """Who is doing the leader's work now; fails on two at once."""

    def __init__(self) -> None:
        self.active: set[str] = set()
        self.overlaps = 0
        self.runs: list[str] = []

    def work(self, who: str, finish: asyncio.Event | None = None) -> Work:
        async def run(stop: asyncio.Event) -> None:
            if self.active:
                self.overlaps += 1
            self.active.add(who)
            self.runs.append(who)
            try:
                waits = [asyncio.create_task(stop.wait())]
                if finish is not None:
                    waits.append(asyncio.create_task(finish.wait()))
                try:
                    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for task in waits:
                        task.cancel()
            finally:
                self.active.discard(who)

        return run


async def test_lead_runs_one_worker_at_a_time_and_hands_over_on_a_clean_stop(
    cluster: Cluster, kube_api: client.ApiClient, namespace: str
) -> None:
    activity = Activity()
    finish_a = asyncio.Event()
    a = asyncio.create_task(
        lead(_elector(cluster, namespace, "op-a"), activity.work("op-a", finish_a))
    )
    await async_wait_until(lambda: _now(activity.runs == ["op-a"]), timeout=10, what="op-a")
    b = asyncio.create_task(lead(_elector(cluster, namespace, "op-b"), activity.work("op-b")))
    try:
        assert await _still_pending(b, 2 * TIMING.retry_period)
        assert activity.runs == ["op-a"]
        finish_a.set()  # op-a's work ends: a clean shutdown releases the Lease
        await asyncio.wait_for(a, timeout=5)
        finished = time.monotonic()
        await async_wait_until(
            lambda: _now(activity.runs == ["op-a", "op-b"]), timeout=10, what="op-b to lead"
        )
        assert time.monotonic() - finished <= 2 * TIMING.retry_period + 1.0
        assert activity.overlaps == 0
    finally:
        for task in (a, b):
            task.cancel()
        await asyncio.gather(a, b, return_exceptions=True)


async def test_lead_stops_the_work_and_raises_when_leadership_is_lost(
    cluster: Cluster, kube_api: client.ApiClient, namespace: str
) -> None:
    activity = Activity()
    leading = asyncio.create_task(lead(_elector(cluster, namespace, "op-a"), activity.work("op-a")))
    try:
        await async_wait_until(lambda: _now(bool(activity.active)), timeout=10, what="work")
        client.CoordinationV1Api(kube_api).patch_namespaced_lease(
            LEASE, namespace, {"spec": {"holderIdentity": "op-z"}}
        )
        with pytest.raises(LeadershipLostError):
            await asyncio.wait_for(leading, timeout=TIMING.renew_deadline + 2)
        assert not activity.active  # the work stopped before lead() returned
        # It does not give back a Lease that is no longer its own.
        assert _lease(kube_api, namespace).spec.holder_identity == "op-z"
    finally:
        leading.cancel()


async def test_a_cancelled_leader_stops_its_work_and_releases(
    cluster: Cluster, kube_api: client.ApiClient, namespace: str
) -> None:
    activity = Activity()
    leading = asyncio.create_task(lead(_elector(cluster, namespace, "op-a"), activity.work("op-a")))
    await async_wait_until(lambda: _now(bool(activity.active)), timeout=10, what="work")
    leading.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leading
    assert not activity.active
    assert not _lease(kube_api, namespace).spec.holder_identity
