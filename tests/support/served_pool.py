"""An AgentPool whose pods really answer (through the pod runner): the secrets it needs
(the model's key, the callers' tokens) and the pool, for the autoscaling end-to-end
tests and benchmark.

    create_served_pool(api, "ns", "support", model_url, redis_url, scaling={...})
    # then: pod_runner_process(...) front, LoadGenerator(front, TOKEN)

    with serve_pool(cluster, api, "ns", "support", work, redis_url, scaling=...) as served:
        # the scripted model, the operator (unless operator=False), the pod runner
        ...LoadGenerator(served.front, TOKEN)

Each replica takes `concurrency` turns at once; the scripted model's think time is what
makes a turn last. `short_windows()` is a mode-Operator scaling section whose windows are
seconds; `replicas_become`, `serving`, `ReplicaTrace`, `PeakTurns` and `pool_condition`
are how the tests watch what the autoscaler did.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import redis
import yaml
from kubernetes import client

from agent_runtime.config.identity import PoolIdentity
from agent_runtime.config.load import load_key
from hack.pod_runner import RunnerProcess, pod_runner_process
from tests.support.cluster import Cluster
from tests.support.operator_process import operator_running
from tests.support.redis_server import free_port
from tests.support.scripted_model import scripted_model_process
from tests.support.wait import ConditionTimeoutError, async_wait_until

GROUP, VERSION, PLURAL = "agentpool.dev", "v1alpha1", "agentpools"
TOKEN = "autoscaling-e2e-token-0123456789"


def short_windows(
    *,
    min_replicas: int = 1,
    max_replicas: int = 4,
    signal: str | None = "ActiveTurns",
    **operator: Any,
) -> dict[str, Any]:
    """Mode Operator with windows of seconds (the defaults wait a minute and more);
    `operator` overrides its settings (e.g. scaleDownWindowSeconds=8); signal None
    leaves the API's default."""
    return {
        "mode": "Operator",
        "minReplicas": min_replicas,
        "maxReplicas": max_replicas,
        "operator": {
            **({"signal": signal} if signal is not None else {}),
            "targetLoadPercent": 50,
            "scaleDownLoadPercent": 30,
            "scaleUpWindowSeconds": 1,
            "scaleDownWindowSeconds": 4,
            "cooldownPeriodSeconds": 3,
            "behavior": {
                "scaleDown": {
                    "stabilizationWindowSeconds": 0,
                    "policies": [{"type": "Pods", "value": 10, "periodSeconds": 1}],
                }
            },
            **operator,
        },
    }


def create_served_pool(
    api: client.ApiClient,
    namespace: str,
    name: str,
    model_url: str,
    redis_url: str,
    *,
    concurrency: int,
    scaling: dict[str, Any],
) -> None:
    """The pool and, once per namespace, its secrets (`llm`, `callers`)."""
    core = client.CoreV1Api(api)
    tokens = {"tokens": [{"name": "load", "token": TOKEN, "tenant": "load"}]}
    for secret, data in (
        ("llm", {"k": "sk-test"}),
        ("callers", {"tokens.yaml": yaml.safe_dump(tokens)}),
    ):
        secret_body = client.V1Secret(metadata=client.V1ObjectMeta(name=secret), string_data=data)
        try:
            core.create_namespaced_secret(namespace, secret_body)
        except client.ApiException as exc:
            if exc.status != 409:
                raise
    spec = {
        "instructions": "Answer briefly.",
        "model": {
            "baseUrl": model_url,
            "name": "m",
            "apiKeySecretRef": {"name": "llm", "key": "k"},
        },
        "memory": {"redis": {"url": redis_url}},
        "access": {"tokensSecretRef": {"name": "callers", "key": "tokens.yaml"}},
        "concurrencyPerReplica": concurrency,
        "scaling": scaling,
    }
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "AgentPool",
        "metadata": {"name": name},
        "spec": spec,
    }
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, body
    )


ACTIVATOR_ADDRESS = "192.0.2.1"
"""The address the operator's activator EndpointSlices name out of cluster (TEST-NET-1:
EndpointSlices refuse loopback addresses); the pod runner maps it to the local port."""


@dataclass(frozen=True)
class Activation:
    """The operator's activator, as served out of cluster."""

    port: int
    """Its local port."""
    pod_network: int
    """The pod runner's pod network (the activator's way to the pods)."""
    wait_seconds: float = 60.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def operator_env(self) -> dict[str, str]:
        return {
            "AGENTPOOL_ACTIVATOR_PORT": str(self.port),
            "AGENTPOOL_ACTIVATOR_ADDRESS": ACTIVATOR_ADDRESS,
            "AGENTPOOL_ACTIVATOR_POD_PROXY": f"http://127.0.0.1:{self.pod_network}",
            "AGENTPOOL_ACTIVATOR_WAIT_SECONDS": str(self.wait_seconds),
        }

    def runner_args(self) -> dict[str, Any]:
        return {
            "aliases": {f"{ACTIVATOR_ADDRESS}:{self.port}": f"127.0.0.1:{self.port}"},
            "extra_args": [f"--pod-network-port={self.pod_network}"],
        }


def new_activation(wait_seconds: float = 60.0) -> Activation:
    return Activation(free_port(), free_port(), wait_seconds)


@dataclass(frozen=True)
class ServedPool:
    model: str
    """The scripted model's URL."""
    runner: RunnerProcess
    front: str
    """The pool's front port (the pod runner's), where callers send their turns."""
    activation: Activation | None = None
    """The operator's activator, when on."""


@contextlib.contextmanager
def serve_pool(
    cluster: Cluster,
    api: client.ApiClient,
    namespace: str,
    name: str,
    workdir: Path,
    redis_url: str,
    *,
    scaling: dict[str, Any],
    concurrency: int = 4,
    think_seconds: float = 1.0,
    operator: bool = True,
    activation: Activation | None = None,
) -> Iterator[ServedPool]:
    """The scripted model (`think_seconds` per answer), the operator (unless told not
    to: a test that kills it starts its own; with `activation`, its activator on), the
    pod runner, and the pool (its CRDs installed already). Everything started here is
    stopped on exit."""
    with contextlib.ExitStack() as stack:
        model = stack.enter_context(
            scripted_model_process(workdir / "model.log", think_seconds=think_seconds)
        )
        if operator:
            env = activation.operator_env() if activation is not None else None
            stack.enter_context(
                operator_running(cluster, [namespace], workdir / "operator.log", env)
            )
        runner_args = activation.runner_args() if activation is not None else {}
        runner = stack.enter_context(
            pod_runner_process(cluster.kubeconfig, [namespace], workdir / "runner", **runner_args)
        )
        create_served_pool(
            api, namespace, name, model, redis_url, concurrency=concurrency, scaling=scaling
        )
        yield ServedPool(model, runner, runner.front_url(namespace, name), activation)


def pool_replicas(api: client.ApiClient, namespace: str, name: str) -> int | None:
    """The pool's spec.replicas (what an autoscaler wrote)."""
    pool = client.CustomObjectsApi(api).get_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, name
    )
    value = pool["spec"].get("replicas")  # type: ignore[index]
    return value if isinstance(value, int) else None


def pool_condition(
    api: client.ApiClient, namespace: str, name: str, type_: str
) -> tuple[str, str] | None:
    """(status, reason) of one of the pool's conditions, None while it has none."""
    pool = client.CustomObjectsApi(api).get_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, name
    )
    for condition in (pool.get("status") or {}).get("conditions", []):  # type: ignore[attr-defined]
        if condition["type"] == type_:
            return condition["status"], condition["reason"]
    return None


def annotate_pool(
    api: client.ApiClient, namespace: str, name: str, annotations: dict[str, str | None]
) -> None:
    """Set (or, with None, remove) annotations of the pool."""
    body = {"metadata": {"annotations": annotations}}
    client.CustomObjectsApi(api).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, name, body
    )


def event_reasons(api: client.ApiClient, namespace: str) -> set[str]:
    """The reasons of every Event in the namespace (the autoscaler's among them)."""
    events = client.CoreV1Api(api).list_namespaced_event(namespace).items
    return {e.reason for e in events if e.reason}


async def replicas_become(
    api: client.ApiClient,
    namespace: str,
    name: str,
    value: int,
    within: float,
    *,
    at_least: bool = False,
) -> float:
    """Seconds until the pool's spec.replicas is `value` (`at_least`: `value` or more)."""
    start = time.monotonic()

    async def probe() -> bool:
        replicas = await asyncio.to_thread(pool_replicas, api, namespace, name)
        return replicas is not None and (replicas >= value if at_least else replicas == value)

    what = f"replicas {'>= ' if at_least else ''}{value}"
    await async_wait_until(probe, timeout=within, interval=0.1, what=what)
    return time.monotonic() - start


async def serving(
    runner: RunnerProcess, namespace: str, name: str, count: int, within: float = 90
) -> set[str]:
    """The pods once exactly `count` agent processes serve the pool (none draining)."""
    pods = await asyncio.to_thread(runner.wait_serving, namespace, name, count, timeout=within)
    return {p.pod for p in pods}


class BackgroundWatch:
    """A look at something every `interval` seconds, beside the test, while `watching()`
    (an error that stops it is raised when the block ends)."""

    interval = 0.1

    async def look(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the looks used (called when watching ends)."""

    async def _watch(self) -> None:
        while True:
            await self.look()
            await asyncio.sleep(self.interval)

    @contextlib.asynccontextmanager
    async def watching(self) -> AsyncIterator[Self]:
        task = asyncio.create_task(self._watch())
        try:
            yield self
        finally:
            task.cancel()
            try:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            finally:
                self.close()


class PeakTurns(BackgroundWatch):
    """The most turns each pod reported running in its Redis sample while watched."""

    interval = 0.2

    def __init__(self, redis_url: str, namespace: str, pool: str) -> None:
        self._redis = redis.Redis.from_url(redis_url, decode_responses=True)
        self._where = (namespace, pool)
        self.peak: dict[str, int] = {}

    async def look(self) -> None:
        samples = await asyncio.to_thread(load_samples, self._redis, *self._where)
        for pod, sample in samples.items():
            self.peak[pod] = max(self.peak.get(pod, 0), sample.active_turns)

    def close(self) -> None:
        self._redis.close()


@dataclass
class ReplicaTrace(BackgroundWatch):
    """The pool's spec.replicas over time (monotonic seconds), read every 100 ms while
    watched: what the tests assert on when a pool must hold its size for a while."""

    api: client.ApiClient
    namespace: str
    name: str
    samples: list[tuple[float, int | None]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    async def look(self) -> None:
        try:
            value = await asyncio.to_thread(pool_replicas, self.api, self.namespace, self.name)
        except client.ApiException as exc:  # a hiccup of the API server: not a sample
            self.errors.append(f"{exc.status} {exc.reason}")
        else:
            self.samples.append((time.monotonic(), value))

    def since(self, start: float) -> list[tuple[float, int | None]]:
        """The samples taken at or after `start`, as (seconds after `start`, replicas)."""
        return [(at - start, value) for at, value in self.samples if at >= start]

    def first_other_than(self, start: float, value: int) -> float | None:
        """Seconds after `start` of the first sample other than `value` (None: none yet)."""
        return next((at for at, found in self.since(start) if found != value), None)

    async def reaches(self, value: int, within: float) -> float:
        """Seconds until a sample taken from now on reads `value` (the trace has it then)."""
        start = time.monotonic()

        async def seen() -> bool:
            return any(found == value for _, found in self.since(start))

        await async_wait_until(seen, timeout=within, interval=0.1, what=f"replicas {value}")
        return time.monotonic() - start

    async def holds(self, value: int, seconds: float) -> None:
        """The pool has `value` replicas now and keeps them for `seconds`."""
        start = time.monotonic()

        async def left() -> bool:
            return self.first_other_than(start, value) is not None

        # Waiting for the size to leave `value`: the deadline passing is the success.
        with contextlib.suppress(ConditionTimeoutError):
            await async_wait_until(left, timeout=seconds, interval=0.1)
        seen = self.since(start)
        assert len(seen) >= 2, f"no replicas read while holding: {seen}"
        assert all(found == value for _, found in seen), (
            f"replicas left {value} within {seconds}s: {seen}"
        )


@dataclass(frozen=True)
class PodLoad:
    pod: str
    active_turns: int
    draining: bool
    at: float


def load_samples(redis: Any, namespace: str, name: str) -> dict[str, PodLoad]:
    """Each pod's fresh load sample as the pod published it to Redis (a sync client)."""
    key = load_key("agentpool", PoolIdentity(namespace=namespace, name=name))
    found: dict[str, PodLoad] = {}
    now = time.time()
    for pod, raw in redis.hgetall(key).items():
        sample = json.loads(raw)
        if now - float(sample["at"]) <= 5:
            found[pod] = PodLoad(
                pod, int(sample["activeTurns"]), bool(sample["draining"]), float(sample["at"])
            )
    return found
