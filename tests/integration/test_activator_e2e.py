"""The activator end to end on the local cluster: real agent processes (the pod runner),
a real Redis, the scripted model, the operator with its activator on.

A pool at zero has an activator EndpointSlice on its Service; a plain HTTP client's
request to the pool's front (kube-proxy's part, which follows the Service's slices)
reaches the activator, which registers a wake request, waits for the pool to scale
0 -> 1 and proxies the request to the new pod: the answer is the model's. Once the pool
is ready its activator slice is gone. A streamed turn streams through the activator.
The activator refuses a pool that has ready pods (no slice), an unknown pool, and, for a
pool that cannot wake (paused), answers 503 with Retry-After when its wait runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from kubernetes import client

from tests.integration.crd_install import install_crds
from tests.support.cluster import Cluster
from tests.support.served_pool import (
    TOKEN,
    ServedPool,
    annotate_pool,
    new_activation,
    replicas_become,
    serve_pool,
    serving,
    short_windows,
)
from tests.support.wait import async_wait_until

POOL = "sleepy"
ACTIVATOR_SLICE = f"{POOL}-activator"
HEADERS = {"Authorization": f"Bearer {TOKEN}"}


@contextlib.contextmanager
def pool_at_zero_served(
    cluster: Cluster,
    api: client.ApiClient,
    namespace: str,
    tmp_path: Path,
    redis_url: str,
    *,
    wait_seconds: float = 60.0,
) -> Iterator[ServedPool]:
    install_crds(cluster)
    scaling = short_windows(min_replicas=0, max_replicas=2, signal="ActiveTurnsAndQueuedTasks")
    with serve_pool(
        cluster,
        api,
        namespace,
        POOL,
        tmp_path,
        redis_url,
        scaling=scaling,
        activation=new_activation(wait_seconds),
    ) as served:
        yield served


def activator_slice(api: client.ApiClient, namespace: str) -> Any | None:
    try:
        return client.DiscoveryV1Api(api).read_namespaced_endpoint_slice(ACTIVATOR_SLICE, namespace)
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise


async def slice_is(api: client.ApiClient, namespace: str, present: bool, within: float) -> None:
    async def probe() -> bool:
        found = await asyncio.to_thread(activator_slice, api, namespace)
        return (found is not None) == present

    what = f"the activator slice {'present' if present else 'gone'}"
    await async_wait_until(probe, timeout=within, interval=0.2, what=what)


async def at_zero(served: ServedPool, api: client.ApiClient, namespace: str) -> None:
    """The new pool's first replica idles away: no pod, no process, the slice in place."""
    await replicas_become(api, namespace, POOL, 0, within=60)
    await serving(served.runner, namespace, POOL, 0)
    await slice_is(api, namespace, True, within=30)


async def test_a_plain_request_wakes_a_pool_at_zero_and_gets_the_models_answer(
    cluster: Cluster, kube_api: client.ApiClient, namespace: str, redis_url: str, tmp_path: Path
) -> None:
    with pool_at_zero_served(cluster, kube_api, namespace, tmp_path, redis_url) as served:
        await asyncio.to_thread(served.runner.wait_serving, namespace, POOL, 1, timeout=90)
        await at_zero(served, kube_api, namespace)
        slice_ = await asyncio.to_thread(activator_slice, kube_api, namespace)
        assert slice_.metadata.labels["endpointslice.kubernetes.io/managed-by"] == (
            "activator.agentpool.dev"
        )
        assert slice_.metadata.labels["kubernetes.io/service-name"] == POOL
        assert slice_.metadata.owner_references[0].kind == "AgentPool"

        async with httpx.AsyncClient(timeout=120) as http:
            started = time.monotonic()
            answer = await http.post(
                f"{served.front}/v1/chat", json={"message": "wake up"}, headers=HEADERS
            )
            woke = time.monotonic() - started
            assert answer.status_code == 200, answer.text
            assert answer.json()["answer"] == "echo: wake up"
            front = served.runner.pool(namespace, POOL)
            assert front.to_activator >= 1  # the request went through the activator
            await replicas_become(kube_api, namespace, POOL, 1, within=5, at_least=True)
            # Ready again: the Service routes to the pods alone.
            await slice_is(kube_api, namespace, False, within=30)

            assert served.activation is not None
            direct = served.activation.url
            host = {"Host": f"{POOL}.{namespace}.svc.cluster.local:8080", **HEADERS}

            # A pool with ready pods and no activator slice: the activator is no way
            # around its NetworkPolicy (past the grace for clients that lag behind).
            async def refused() -> bool:
                found = await http.post(f"{direct}/v1/chat", json={"message": "x"}, headers=host)
                return found.status_code == 421

            await async_wait_until(refused, timeout=20, interval=0.5, what="421 once ready")
            found = await http.post(f"{direct}/v1/chat", json={"message": "x"}, headers=host)
            assert found.json()["error"]["type"] == "NotRoutedToActivator"
            unknown = await http.post(
                f"{direct}/v1/chat",
                json={"message": "x"},
                headers={"Host": f"nosuchpool.{namespace}.svc"},
            )
            assert unknown.status_code == 404
            assert unknown.json()["error"]["type"] == "PoolNotFound"

            # Back to zero; a streamed turn wakes it and streams through.
            await at_zero(served, kube_api, namespace)
            arrivals: list[tuple[float, bytes]] = []
            async with http.stream(
                "POST",
                f"{served.front}/v1/chat",
                json={"message": "stream me", "stream": True},
                headers=HEADERS,
            ) as streamed:
                assert streamed.status_code == 200
                assert streamed.headers["content-type"].startswith("text/event-stream")
                async for chunk in streamed.aiter_raw():
                    arrivals.append((time.monotonic(), chunk))
        text = b"".join(c for _, c in arrivals).decode()
        assert '"type": "start"' in text or '"type":"start"' in text, text
        assert "echo: stream me" in text
        # Streamed, not buffered: the start event arrived well before the end (the
        # model thinks for a second in between).
        first = next(at for at, c in arrivals if b"start" in c)
        assert arrivals[-1][0] - first > 0.5, [(round(a, 2), c[:40]) for a, c in arrivals]
    print(f"\nwoken and answered {woke:.1f}s after the request")


async def test_a_pool_that_cannot_wake_answers_503_with_retry_after(
    cluster: Cluster, kube_api: client.ApiClient, namespace: str, redis_url: str, tmp_path: Path
) -> None:
    with pool_at_zero_served(
        cluster, kube_api, namespace, tmp_path, redis_url, wait_seconds=5
    ) as served:
        await asyncio.to_thread(served.runner.wait_serving, namespace, POOL, 1, timeout=90)
        await at_zero(served, kube_api, namespace)
        annotate_pool(kube_api, namespace, POOL, {"agentpool.dev/paused": "true"})
        async with httpx.AsyncClient(timeout=60) as http:
            answer = await http.post(
                f"{served.front}/v1/chat", json={"message": "hello?"}, headers=HEADERS
            )
        assert answer.status_code == 503, answer.text
        assert int(answer.headers["retry-after"]) >= 1
        assert answer.json()["error"]["type"] == "PoolNotWoken"
        assert "retry later" in answer.json()["error"]["message"]
        assert served.runner.pool(namespace, POOL).pods == []
