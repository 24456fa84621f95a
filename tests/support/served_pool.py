"""An AgentPool whose pods really answer (through the pod runner): the secrets it needs
(the model's key, the callers' tokens) and the pool, for the autoscaling end-to-end
tests and benchmark.

    create_served_pool(api, "ns", "support", model_url, redis_url, scaling={...})
    # then: pod_runner_process(...) front, LoadGenerator(front, TOKEN)

Each replica takes `concurrency` turns at once; the scripted model's think time is what
makes a turn last.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import yaml
from kubernetes import client

from agent_runtime.config.identity import PoolIdentity
from agent_runtime.config.load import load_key

GROUP, VERSION, PLURAL = "agentpool.dev", "v1alpha1", "agentpools"
TOKEN = "autoscaling-e2e-token-0123456789"


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


def pool_replicas(api: client.ApiClient, namespace: str, name: str) -> int | None:
    """The pool's spec.replicas (what an autoscaler wrote)."""
    pool = client.CustomObjectsApi(api).get_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, name
    )
    value = pool["spec"].get("replicas")  # type: ignore[index]
    return value if isinstance(value, int) else None


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
