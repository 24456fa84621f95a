"""The generated CRDs against the real API server: samples, refusals, scale, properties."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from typing import Any, cast

import pytest
from hypothesis import HealthCheck, event, given, settings
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from agentpool_operator import api
from tests.integration.crd_install import REPO_ROOT, install_crds
from tests.support.cluster import Cluster
from tests.support.wait import wait_until
from tests.unit.api_strategies import (
    BASE_POOL,
    pool_rule_probes,
    pool_specs,
    tool_rule_probes,
    tool_specs,
)

PLURALS = {"AgentPool": "agentpools", "AgentTool": "agenttools"}
SPEC_MODELS: dict[str, type[api.ApiModel]] = {
    "AgentPool": api.AgentPoolSpec,
    "AgentTool": api.AgentToolSpec,
}
# The server is shared with the rest of the suite on a 2-core box: few, cheap examples.
SERVER_PROPERTY = settings(
    max_examples=20, suppress_health_check=[HealthCheck.too_slow], deadline=None
)


@pytest.fixture(scope="module")
def crds(cluster: Cluster) -> Cluster:
    install_crds(cluster)
    return cluster


@pytest.fixture(scope="module")
def objects(crds: Cluster, kube_api: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(kube_api)


@pytest.fixture(scope="module")
def shared_namespace(crds: Cluster, kube_api: client.ApiClient) -> Iterator[str]:
    """One namespace for the dry-run property tests (hypothesis runs many examples per
    test, so a per-test namespace would not be fresh per example anyway)."""
    name = f"t-crd-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(kube_api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name, propagation_policy="Background")


def _body(kind: str, spec: dict[str, Any], name: str = "probe") -> dict[str, Any]:
    return {"apiVersion": api.API_VERSION, "kind": kind, "metadata": {"name": name}, "spec": spec}


def _create(
    objects: client.CustomObjectsApi,
    namespace: str,
    kind: str,
    spec: dict[str, Any],
    *,
    dry_run: bool = True,
) -> dict[str, Any]:
    result = objects.create_namespaced_custom_object(
        api.GROUP,
        api.VERSION,
        namespace,
        PLURALS[kind],
        _body(kind, spec),
        dry_run="All" if dry_run else None,
        field_validation="Strict",
    )
    return cast(dict[str, Any], result)


def _server_refusal(
    objects: client.CustomObjectsApi, namespace: str, kind: str, spec: dict[str, Any]
) -> str | None:
    """The server's error message, or None when it accepts the spec."""
    try:
        _create(objects, namespace, kind, spec)
    except ApiException as exc:
        error = exc
    else:
        return None
    # 422: schema or CEL; 400: an unknown field under strict field validation.
    assert error.status in (400, 422), f"not a validation error: {error.status}: {error.body}"
    message: str = json.loads(str(error.body))["message"]
    return message


def _model_accepts(kind: str, spec: dict[str, Any]) -> bool:
    try:
        SPEC_MODELS[kind].model_validate(spec)
    except ValidationError:
        return False
    return True


def _without_empty_collections(value: Any) -> Any:
    # The CRDs leave empty collections out, the models fill them in; both mean the same.
    if isinstance(value, dict):
        pruned = {k: _without_empty_collections(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v not in ([], {})}
    if isinstance(value, list):
        return [_without_empty_collections(v) for v in value]
    return value


# ---------------------------------------------------------------------------- samples


def test_every_sample_is_accepted_and_reads_back_as_the_models_expect(
    crds: Cluster, namespace: str
) -> None:
    crds.kubectl("apply", "--server-side", "-n", namespace, "-f", str(REPO_ROOT / "examples"))
    pools = json.loads(crds.kubectl("get", "agentpools", "-n", namespace, "-o", "json").stdout)
    tools = json.loads(crds.kubectl("get", "agenttools", "-n", namespace, "-o", "json").stdout)
    assert {p["metadata"]["name"] for p in pools["items"]} == {"customer-support", "billing"}
    assert {t["metadata"]["name"] for t in tools["items"]} == {
        "lookup-order",
        "search-help-center",
        "ask-billing-specialist",
        "shipping",
    }
    for item in pools["items"]:
        pool = api.AgentPool.model_validate(item)
        # The server applied the same defaults the models do.
        assert _without_empty_collections(item["spec"]) == _without_empty_collections(
            pool.spec.model_dump(mode="json", by_alias=True, exclude_none=True)
        )
    for item in tools["items"]:
        tool = api.AgentTool.model_validate(item)
        assert _without_empty_collections(item["spec"]) == _without_empty_collections(
            tool.spec.model_dump(mode="json", by_alias=True, exclude_none=True)
        )


def test_kubectl_get_shows_the_printer_columns_and_the_category(
    crds: Cluster, namespace: str
) -> None:
    crds.kubectl("apply", "--server-side", "-n", namespace, "-f", str(REPO_ROOT / "examples"))
    ready = {
        "type": "Ready",
        "status": "False",
        "reason": "ToolMissing",
        "message": "m",
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    }
    status = {"readyReplicas": 2, "desiredReplicas": 3, "demand": 9, "loadPercent": 42}
    crds.kubectl(
        "patch", "agentpool", "customer-support", "-n", namespace, "--subresource=status",
        "--type=merge", "-p", json.dumps({"status": {**status, "conditions": [ready]}}),
    )  # fmt: skip
    table = crds.kubectl("get", "ap", "customer-support", "-n", namespace).stdout.splitlines()
    assert table[0].split()[:6] == ["NAME", "READY", "DESIRED", "DEMAND", "LOAD%", "STATUS"]
    assert table[1].split()[:6] == ["customer-support", "2", "3", "9", "42", "ToolMissing"]
    both = crds.kubectl("get", "agentpool-all", "-n", namespace, "-o", "name").stdout.split()
    assert "agentpool.agentpool.dev/billing" in both
    assert "agenttool.agentpool.dev/lookup-order" in both
    tools = crds.kubectl("get", "at", "-n", namespace).stdout.splitlines()
    assert tools[0].split()[:3] == ["NAME", "IMPLEMENTATION", "READY"]


def test_kubectl_explain_shows_plain_text_with_the_defaults(crds: Cluster) -> None:
    def explain(field: str) -> str:
        # kubectl wraps lines; compare words, not layout.
        return " ".join(crds.kubectl("explain", field).stdout.split())

    scaling = explain("agentpool.spec.scaling")
    assert "Fewest replicas" in scaling
    assert "Defaults to Operator." in scaling
    assert "Defaults to 1." in scaling
    assert "`" not in scaling
    assert "Above it, the pool grows. Defaults to 70." in explain(
        "agentpool.spec.scaling.operator.targetLoadPercent"
    )
    assert "hysteresis band" in explain("agentpool.spec.scaling.operator.scaleDownLoadPercent")


# ---------------------------------------------------------------------------- scale


def test_kubectl_scale_sets_spec_replicas_through_the_scale_subresource(
    crds: Cluster, objects: client.CustomObjectsApi, namespace: str
) -> None:
    _create(objects, namespace, "AgentPool", BASE_POOL, dry_run=False)
    crds.kubectl("scale", "agentpool/probe", "--replicas=3", "-n", namespace)
    pool = cast(
        dict[str, Any],
        objects.get_namespaced_custom_object(
            api.GROUP, api.VERSION, namespace, "agentpools", "probe"
        ),
    )
    assert pool["spec"]["replicas"] == 3
    scale = json.loads(
        crds.kubectl(
            "get",
            "--raw",
            f"/apis/agentpool.dev/v1alpha1/namespaces/{namespace}/agentpools/probe/scale",
        ).stdout
    )
    assert scale["kind"] == "Scale"
    assert scale["spec"]["replicas"] == 3
    # The same bounds hold through the subresource.
    refused = crds.kubectl(
        "scale", "agentpool/probe", "--replicas=5000", "-n", namespace, check=False
    )
    assert refused.returncode != 0
    assert "spec.replicas" in refused.stderr


def test_the_scale_subresource_is_unreadable_until_replicas_is_written(
    crds: Cluster, objects: client.CustomObjectsApi, namespace: str
) -> None:
    # Why the operator writes spec.replicas (through /scale) when a pool leaves it out:
    # the server cannot serve the Scale of an object without the field, and the HPA
    # controller reads the Scale before it writes one.
    _create(objects, namespace, "AgentPool", BASE_POOL, dry_run=False)
    path = f"/apis/agentpool.dev/v1alpha1/namespaces/{namespace}/agentpools/probe/scale"
    missing = crds.kubectl("get", "--raw", path, check=False)
    assert missing.returncode != 0
    assert ".spec.replicas" in missing.stderr
    # A patch of /scale reads the Scale first, and fails the same way; a PUT does not.
    patched = crds.kubectl(
        "patch", "agentpool", "probe", "-n", namespace, "--subresource=scale",
        "--type=merge", "-p", '{"spec": {"replicas": 1}}', check=False,
    )  # fmt: skip
    assert patched.returncode != 0
    objects.replace_namespaced_custom_object_scale(
        api.GROUP,
        api.VERSION,
        namespace,
        "agentpools",
        "probe",
        {"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": "probe"},
         "spec": {"replicas": 1}},
    )  # fmt: skip
    assert json.loads(crds.kubectl("get", "--raw", path).stdout)["spec"]["replicas"] == 1


def test_status_written_through_the_subresource_feeds_the_scale_selector(
    crds: Cluster, objects: client.CustomObjectsApi, namespace: str
) -> None:
    _create(objects, namespace, "AgentPool", {**BASE_POOL, "replicas": 1}, dry_run=False)
    objects.patch_namespaced_custom_object_status(
        api.GROUP,
        api.VERSION,
        namespace,
        "agentpools",
        "probe",
        {"status": {"replicas": 1, "selector": "agentpool.dev/pool=probe"}},
    )

    def scale_status() -> dict[str, Any] | None:
        out = crds.kubectl(
            "get",
            "--raw",
            f"/apis/agentpool.dev/v1alpha1/namespaces/{namespace}/agentpools/probe/scale",
        ).stdout
        status: dict[str, Any] = json.loads(out)["status"]
        return status if status.get("selector") else None

    status = wait_until(scale_status, timeout=10, what="the scale subresource's selector")
    assert status == {"replicas": 1, "selector": "agentpool.dev/pool=probe"}


def test_an_hpa_can_target_a_pool(
    crds: Cluster, objects: client.CustomObjectsApi, namespace: str
) -> None:
    _create(objects, namespace, "AgentPool", {**BASE_POOL, "replicas": 1}, dry_run=False)
    objects.patch_namespaced_custom_object_status(
        api.GROUP,
        api.VERSION,
        namespace,
        "agentpools",
        "probe",
        {"status": {"replicas": 1, "selector": "agentpool.dev/pool=probe"}},
    )
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "probe", "namespace": namespace},
        "spec": {
            "scaleTargetRef": {
                "apiVersion": api.API_VERSION,
                "kind": "AgentPool",
                "name": "probe",
            },
            "minReplicas": 2,
            "maxReplicas": 4,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 80},
                    },
                }
            ],
        },
    }
    crds.kubectl("apply", "-f", "-", input=json.dumps(hpa))

    # Below minReplicas the HPA controller scales up without metrics, through the
    # pool's scale subresource.
    def replicas() -> int | None:
        pool = cast(
            dict[str, Any],
            objects.get_namespaced_custom_object(
                api.GROUP, api.VERSION, namespace, "agentpools", "probe"
            ),
        )
        value = pool["spec"]["replicas"]
        return value if value == 2 else None

    assert wait_until(replicas, timeout=90, interval=1, what="the HPA to scale the pool") == 2


# ---------------------------------------------------------------------------- refusals


def _pool(**changes: Any) -> dict[str, Any]:
    spec = copy.deepcopy(BASE_POOL)
    for dotted, value in changes.items():
        target = spec
        *parents, leaf = dotted.split("__")
        for part in parents:
            target = target.setdefault(part, {})
        if value is _DELETE:
            del target[leaf]
        else:
            target[leaf] = value
    return spec


def _tool(**changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "description": "Look an order up.",
        "parameters": {"type": "object", "properties": {"id": {"type": "string"}}},
        "http": {"url": "https://orders.example.com/{id}"},
    }
    for key, value in changes.items():
        if value is _DELETE:
            del spec[key]
        else:
            spec[key] = value
    return spec


_DELETE = object()
_HTTP = {"url": "https://orders.example.com/{id}"}

_PARAMS = {"type": "object", "properties": {"id": {"type": "string"}}}

INVALID: list[tuple[str, str, dict[str, Any], str]] = [
    # (id, kind, spec, the field the server's message must name)
    ("pool-domain-not-a-label", "AgentPool", _pool(domain="Customer Support"), "spec.domain"),
    ("pool-no-model", "AgentPool", _pool(model=_DELETE), "spec.model"),
    ("pool-no-instructions", "AgentPool", _pool(instructions=_DELETE), "spec.instructions"),
    (
        "pool-two-instructions",
        "AgentPool",
        _pool(instructionsFrom={"configMapKeyRef": {"name": "p", "key": "k"}}),
        "spec.instructions",
    ),
    ("pool-model-url-scheme", "AgentPool", _pool(model__baseUrl="ftp://llm"), "spec.model.baseUrl"),
    (
        "pool-temperature-range",
        "AgentPool",
        _pool(model__temperature="3"),
        "spec.model.temperature",
    ),
    (
        "pool-temperature-float",
        "AgentPool",
        _pool(model__temperature=0.5),
        "spec.model.temperature",
    ),
    ("pool-api-key-inline", "AgentPool", _pool(model__apiKey="sk-123"), "spec.model.apiKey"),
    ("pool-replicas-negative", "AgentPool", _pool(replicas=-1), "spec.replicas"),
    ("pool-replicas-above-max", "AgentPool", _pool(replicas=11), "spec.replicas"),
    (
        "pool-replicas-below-min",
        "AgentPool",
        _pool(replicas=1, scaling__minReplicas=2),
        "spec.replicas",
    ),
    (
        "pool-concurrency-zero",
        "AgentPool",
        _pool(concurrencyPerReplica=0),
        "spec.concurrencyPerReplica",
    ),
    ("pool-scaling-mode", "AgentPool", _pool(scaling__mode="keda"), "spec.scaling.mode"),
    ("pool-scaling-mode-case", "AgentPool", _pool(scaling__mode="hpa"), "spec.scaling.mode"),
    (
        "pool-min-above-max",
        "AgentPool",
        _pool(scaling__minReplicas=5, scaling__maxReplicas=2),
        "spec.scaling.minReplicas",
    ),
    ("pool-max-zero", "AgentPool", _pool(scaling__maxReplicas=0), "spec.scaling.maxReplicas"),
    (
        "pool-scale-down-mark-above-target",
        "AgentPool",
        _pool(scaling__operator={"targetLoadPercent": 60, "scaleDownLoadPercent": 80}),
        "spec.scaling.operator.scaleDownLoadPercent",
    ),
    (
        "pool-hpa-min-zero",
        "AgentPool",
        _pool(scaling__mode="HPA", scaling__minReplicas=0),
        "spec.scaling.minReplicas",
    ),
    (
        "pool-zero-without-a-waking-signal",
        "AgentPool",
        _pool(scaling__minReplicas=0, scaling__operator={"signal": "ActiveTurns"}),
        "spec.scaling.minReplicas",
    ),
    (
        "pool-hpa-settings-in-operator-mode",
        "AgentPool",
        _pool(scaling__hpa={"metric": "CPU"}),
        "spec.scaling.hpa",
    ),
    (
        "pool-stabilization-range",
        "AgentPool",
        _pool(scaling__operator={"behavior": {"scaleDown": {"stabilizationWindowSeconds": 7200}}}),
        "spec.scaling.operator.behavior.scaleDown.stabilizationWindowSeconds",
    ),
    (
        "pool-redis-url-and-secret",
        "AgentPool",
        _pool(memory__redis={"url": "redis://r:6379", "urlSecretRef": {"name": "r", "key": "u"}}),
        "spec.memory.redis",
    ),
    (
        "pool-redis-password-in-url",
        "AgentPool",
        _pool(memory__redis={"url": "redis://:hunter2@r:6379"}),
        "spec.memory.redis.url",
    ),
    (
        "pool-episodic-endpoint-without-model",
        "AgentPool",
        _pool(memory__episodic={"enabled": True, "embedder": "Endpoint"}),
        "spec.memory.episodic.embeddingModel",
    ),
    (
        "pool-importance-range",
        "AgentPool",
        _pool(memory__longTerm={"importanceThreshold": "1.5"}),
        "spec.memory.longTerm.importanceThreshold",
    ),
    (
        "pool-failure-rate-range",
        "AgentPool",
        _pool(resilience__circuitBreaker={"failureRateThreshold": 150}),
        "spec.resilience.circuitBreaker.failureRateThreshold",
    ),
    (
        "pool-min-calls-above-window",
        "AgentPool",
        _pool(resilience__circuitBreaker={"slidingWindowSize": 5, "minimumNumberOfCalls": 10}),
        "spec.resilience.circuitBreaker.minimumNumberOfCalls",
    ),
    (
        "pool-backoff-inverted",
        "AgentPool",
        _pool(
            resilience__retry={"initialBackoffMilliseconds": 30_000, "maxBackoffMilliseconds": 5}
        ),
        "spec.resilience.retry.initialBackoffMilliseconds",
    ),
    (
        "pool-duplicate-tool-refs",
        "AgentPool",
        _pool(tools__refs=[{"name": "a"}, {"name": "a"}]),
        "spec.tools.refs[1]",
    ),
    ("pool-empty-tool-selector", "AgentPool", _pool(tools__selector={}), "spec.tools.selector"),
    (
        "pool-selector-in-without-values",
        "AgentPool",
        _pool(tools__selector={"matchExpressions": [{"key": "tier", "operator": "In"}]}),
        "spec.tools.selector.matchExpressions[0].values",
    ),
    (
        "pool-bad-quantity",
        "AgentPool",
        _pool(podTemplate__resources={"limits": {"cpu": "lots"}}),
        "spec.podTemplate.resources.limits.cpu",
    ),
    (
        "pool-toleration-exists-with-value",
        "AgentPool",
        _pool(podTemplate__tolerations=[{"key": "k", "operator": "Exists", "value": "v"}]),
        "spec.podTemplate.tolerations[0].value",
    ),
    (
        "pool-request-over-limit",
        "AgentPool",
        _pool(podTemplate__resources={"requests": {"memory": "2Gi"}, "limits": {"memory": "1Gi"}}),
        "spec.podTemplate.resources.requests",
    ),
    (
        "pool-unknown-resource-name",
        "AgentPool",
        _pool(podTemplate__resources={"requests": {"gpu": "1"}}),
        "spec.podTemplate.resources.requests",
    ),
    (
        "pool-duplicate-spread-constraint",
        "AgentPool",
        _pool(
            podTemplate__topologySpreadConstraints=[
                {"maxSkew": 1, "topologyKey": "zone"},
                {"maxSkew": 2, "topologyKey": "zone"},
            ]
        ),
        "spec.podTemplate.topologySpreadConstraints[1]",
    ),
    (
        "pool-toleration-without-key",
        "AgentPool",
        _pool(podTemplate__tolerations=[{"operator": "Equal", "value": "v"}]),
        "spec.podTemplate.tolerations[0].key",
    ),
    (
        "pool-env-value-and-value-from",
        "AgentPool",
        _pool(
            podTemplate__env=[
                {
                    "name": "A",
                    "value": "1",
                    "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}},
                }
            ]
        ),
        "spec.podTemplate.env[0].valueFrom",
    ),
    (
        "pool-label-key",
        "AgentPool",
        _pool(podTemplate__labels={"not a key": "v"}),
        "spec.podTemplate.labels",
    ),
    (
        "pool-mount-without-volume",
        "AgentPool",
        _pool(podTemplate__volumeMounts=[{"name": "data", "mountPath": "/data"}]),
        "spec.podTemplate.volumeMounts",
    ),
    (
        "pool-pdb-percent",
        "AgentPool",
        _pool(disruptionBudget__maxUnavailable="150%"),
        "spec.disruptionBudget.maxUnavailable",
    ),
    ("pool-unknown-field", "AgentPool", _pool(scaling__minReplica=2), "spec.scaling.minReplica"),
    (
        "tool-no-description",
        "AgentTool",
        {"http": _HTTP, "parameters": _PARAMS},
        "spec.description",
    ),
    ("tool-no-implementation", "AgentTool", {"description": "d"}, "spec"),
    (
        "tool-two-implementations",
        "AgentTool",
        _tool(agent={"poolName": "billing"}),
        "spec",
    ),
    (
        "tool-parameters-not-an-object",
        "AgentTool",
        _tool(parameters={"type": "array", "items": {"type": "string"}}),
        "spec.parameters.type",
    ),
    (
        "tool-http-without-parameters",
        "AgentTool",
        {"description": "d", "http": {"url": "https://orders.example.com/x"}},
        "spec.parameters",
    ),
    (
        "tool-http-undeclared-placeholder",
        "AgentTool",
        _tool(http={"url": "https://orders.example.com/{order}"}),
        "spec.http.url",
    ),
    (
        "tool-command-undeclared-placeholder",
        "AgentTool",
        _tool(
            http=_DELETE,
            command={"argv": ["/bin/echo", "{id}{x}"], "allowedBinaries": ["/bin/echo"]},
        ),
        "spec.command.argv",
    ),
    (
        "tool-agent-with-parameters",
        "AgentTool",
        _tool(http=_DELETE, agent={"poolName": "billing"}),
        "spec.parameters",
    ),
    ("tool-http-url", "AgentTool", _tool(http={"url": "orders.example.com"}), "spec.http.url"),
    ("tool-http-method", "AgentTool", _tool(http={**_HTTP, "method": "TRACE"}), "spec.http.method"),
    (
        "tool-authorization-inline",
        "AgentTool",
        _tool(http={**_HTTP, "headers": [{"name": "Authorization", "value": "Bearer x"}]}),
        "spec.http.headers[0].value",
    ),
    (
        "tool-command-binary-not-allowed",
        "AgentTool",
        _tool(
            http=_DELETE,
            command={"argv": ["/bin/sh", "-c", "{id}"], "allowedBinaries": ["/bin/echo"]},
        ),
        "spec.command.argv",
    ),
    (
        "tool-command-empty-argv",
        "AgentTool",
        _tool(http=_DELETE, command={"argv": [], "allowedBinaries": ["/bin/echo"]}),
        "spec.command.argv",
    ),
    (
        "tool-command-output-cap",
        "AgentTool",
        _tool(
            http=_DELETE,
            command={"argv": ["/bin/echo"], "allowedBinaries": ["/bin/echo"], "maxOutputBytes": 0},
        ),
        "spec.command.maxOutputBytes",
    ),
    (
        "tool-read-only-and-destructive",
        "AgentTool",
        _tool(hints={"readOnlyHint": True, "destructiveHint": True}),
        "spec.hints.destructiveHint",
    ),
    (
        "tool-cache-of-a-writing-tool",
        "AgentTool",
        _tool(cache={"enabled": True}),
        "spec.cache.enabled",
    ),
    (
        "tool-agent-pool-name",
        "AgentTool",
        {"description": "d", "agent": {"poolName": "Billing_Team"}},
        "spec.agent.poolName",
    ),
    (
        "tool-agent-pool-name-not-dns-1035",
        "AgentTool",
        {"description": "d", "agent": {"poolName": "1billing"}},
        "spec.agent.poolName",
    ),
    (
        "tool-mcp-sse",
        "AgentTool",
        {"description": "d", "mcp": {"url": "https://mcp.example.com/mcp", "transport": "SSE"}},
        "spec.mcp.transport",
    ),
    (
        "tool-mcp-result-schema",
        "AgentTool",
        {
            "description": "d",
            "mcp": {"url": "https://m.example.com"},
            "resultSchema": {"type": "object"},
        },
        "spec.resultSchema",
    ),
    (
        "tool-mcp-approval-not-a-subset",
        "AgentTool",
        {
            "description": "d",
            "mcp": {"url": "https://m.example.com", "toolNames": ["a"], "requireApproval": ["b"]},
        },
        "spec.mcp.requireApproval",
    ),
]


def test_an_mcp_tool_name_must_fit_as_the_prefix_of_its_tools(
    objects: client.CustomObjectsApi, shared_namespace: str
) -> None:
    body = {
        "apiVersion": api.API_VERSION,
        "kind": "AgentTool",
        "metadata": {"name": "a-very-long-name-for-an-mcp-server-tool"},
        "spec": {"description": "d", "mcp": {"url": "https://m.example.com"}},
    }
    with pytest.raises(ApiException) as refused:
        objects.create_namespaced_custom_object(
            api.GROUP, api.VERSION, shared_namespace, "agenttools", body, dry_run="All"
        )
    assert "metadata.name" in json.loads(str(refused.value.body))["message"]
    with pytest.raises(ValidationError, match="prefixes the name"):
        api.AgentTool.model_validate(body)


def test_the_table_of_refusals_is_long_enough() -> None:
    assert len(INVALID) >= 20
    assert len({case[0] for case in INVALID}) == len(INVALID)


@pytest.mark.parametrize(
    ("kind", "spec", "field"), [case[1:] for case in INVALID], ids=[case[0] for case in INVALID]
)
def test_the_server_refuses_invalid_objects_naming_the_field(
    objects: client.CustomObjectsApi,
    shared_namespace: str,
    kind: str,
    spec: dict[str, Any],
    field: str,
) -> None:
    message = _server_refusal(objects, shared_namespace, kind, spec)
    assert message is not None, "the server accepted it"
    assert f"{field}:" in message or f'"{field}"' in message, message
    # The models refuse it too, so the operator never acts on it.
    assert not _model_accepts(kind, spec)


# ---------------------------------------------------------------------------- properties


def _assert_round_trips(
    objects: client.CustomObjectsApi,
    namespace: str,
    kind: str,
    spec_model: type[api.AgentPoolSpec] | type[api.AgentToolSpec],
    spec: dict[str, Any],
) -> None:
    """The server stores what the models accept, and reads back as the same model."""
    model = spec_model.model_validate(spec)
    stored = _create(objects, namespace, kind, spec)["spec"]
    assert spec_model.model_validate(stored) == model
    dumped = model.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert _without_empty_collections(stored) == _without_empty_collections(dumped)


@SERVER_PROPERTY
@given(spec=pool_specs())
def test_any_pool_the_models_accept_is_accepted_and_round_trips(
    objects: client.CustomObjectsApi, shared_namespace: str, spec: dict[str, Any]
) -> None:
    _assert_round_trips(objects, shared_namespace, "AgentPool", api.AgentPoolSpec, spec)


@SERVER_PROPERTY
@given(spec=tool_specs())
def test_any_tool_the_models_accept_is_accepted_and_round_trips(
    objects: client.CustomObjectsApi, shared_namespace: str, spec: dict[str, Any]
) -> None:
    _assert_round_trips(objects, shared_namespace, "AgentTool", api.AgentToolSpec, spec)


@SERVER_PROPERTY
@given(spec=pool_rule_probes())
def test_models_and_server_agree_on_the_pool_rules(
    objects: client.CustomObjectsApi, shared_namespace: str, spec: dict[str, Any]
) -> None:
    refusal = _server_refusal(objects, shared_namespace, "AgentPool", spec)
    event("server refused" if refusal else "server accepted")
    assert _model_accepts("AgentPool", spec) == (refusal is None), refusal


@SERVER_PROPERTY
@given(spec=tool_rule_probes())
def test_models_and_server_agree_on_the_tool_rules(
    objects: client.CustomObjectsApi, shared_namespace: str, spec: dict[str, Any]
) -> None:
    refusal = _server_refusal(objects, shared_namespace, "AgentTool", spec)
    event("server refused" if refusal else "server accepted")
    assert _model_accepts("AgentTool", spec) == (refusal is None), refusal
