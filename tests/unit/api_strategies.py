"""Hypothesis strategies for AgentPool and AgentTool specs, as camelCase documents.

`pool_specs()` and `tool_specs()` draw specs the models accept (valid by construction,
over the whole surface: optional sections, enums, bounds). `pool_rule_probes()` and
`tool_rule_probes()` draw specs that are valid except, maybe, for the cross-field rules,
so that the models' verdict can be compared with the API server's.
Shared by the unit tests and the integration tests against the real API server.
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import strategies as st

Doc = dict[str, Any]

dns_labels = st.from_regex(r"[a-z]([a-z0-9-]{0,14}[a-z0-9])?", fullmatch=True)
# Printable text, including non-ASCII; no control characters or lone surrogates.
texts = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")),
    min_size=1,
    max_size=40,
)
header_names = st.from_regex(r"X-[A-Za-z0-9-]{1,12}", fullmatch=True)
urls = st.builds(
    lambda scheme, host, path: f"{scheme}://{host}.example.com/{path}",
    st.sampled_from(["http", "https"]),
    dns_labels,
    st.from_regex(r"[a-z0-9/{}_]{0,20}", fullmatch=True),
)
secret_refs = st.fixed_dictionaries({"name": dns_labels, "key": dns_labels})
seconds = st.floats(min_value=0.001, max_value=600, allow_nan=False, allow_infinity=False)


def _some(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[Doc]:
    """A document with any subset of the given fields."""
    return st.fixed_dictionaries({}, optional=fields)


# ---------------------------------------------------------------- AgentPool sections

models = st.fixed_dictionaries(
    {"baseUrl": urls, "name": texts},
    optional={
        "apiKeySecretRef": secret_refs,
        "timeoutSeconds": seconds,
        "temperature": st.floats(0, 2),
        "topP": st.floats(0.01, 1),
        "maxTokens": st.integers(1, 1_000_000),
    },
)

label_selectors = _some(
    matchLabels=st.dictionaries(dns_labels, dns_labels, max_size=3),
    matchExpressions=st.lists(
        st.one_of(
            st.fixed_dictionaries(
                {
                    "key": dns_labels,
                    "operator": st.sampled_from(["In", "NotIn"]),
                    "values": st.lists(dns_labels, min_size=1, max_size=3),
                }
            ),
            st.fixed_dictionaries(
                {"key": dns_labels, "operator": st.sampled_from(["Exists", "DoesNotExist"])}
            ),
        ),
        max_size=3,
    ),
)

tool_selections = _some(
    refs=st.lists(dns_labels, max_size=4, unique=True).map(
        lambda names: [{"name": n} for n in names]
    ),
    selector=label_selectors,
)

redis_connections = st.one_of(
    st.builds(lambda host: {"url": f"redis://{host}:6379/0"}, dns_labels),
    st.builds(lambda ref: {"urlSecretRef": ref}, secret_refs),
)

episodic = st.one_of(
    _some(enabled=st.booleans(), embedder=st.just("Hashing"), dimensions=st.integers(8, 4096)),
    st.fixed_dictionaries(
        {"embedder": st.just("Endpoint"), "embeddingModel": texts},
        optional={"enabled": st.booleans(), "recallLimit": st.integers(1, 50)},
    ),
)

memories = _some(
    redis=redis_connections,
    working=_some(capacity=st.integers(1, 1000)),
    longTerm=_some(
        enabled=st.booleans(),
        ttlSeconds=st.integers(60, 31_536_000),
        importanceThreshold=st.floats(0, 1),
    ),
    episodic=episodic,
)


@st.composite
def circuit_breakers(draw: st.DrawFn) -> Doc:
    doc = draw(
        _some(
            enabled=st.booleans(),
            failureRateThreshold=st.integers(1, 100),
            slowCallRateThreshold=st.integers(1, 100),
            slowCallDurationThresholdSeconds=seconds,
            waitDurationInOpenStateSeconds=seconds,
            permittedNumberOfCallsInHalfOpenState=st.integers(1, 100),
            slidingWindowType=st.sampled_from(["CountBased", "TimeBased"]),
        )
    )
    size = draw(st.integers(1, 10_000))
    doc["slidingWindowSize"] = size
    doc["minimumNumberOfCalls"] = draw(st.integers(1, min(size, 100)))
    return doc


@st.composite
def retries(draw: st.DrawFn) -> Doc:
    low, high = sorted(draw(st.lists(st.floats(0, 600), min_size=2, max_size=2)))
    doc = draw(
        _some(
            maxAttempts=st.integers(1, 20),
            backoffMultiplier=st.floats(1, 10),
            jitter=st.booleans(),
        )
    )
    return {**doc, "initialBackoffSeconds": low, "maxBackoffSeconds": high}


resiliences = _some(
    circuitBreaker=circuit_breakers(),
    retry=retries(),
    timeoutSeconds=seconds,
)

caches = _some(
    enabled=st.booleans(),
    maxEntries=st.integers(1, 1_000_000),
    ttlSeconds=st.integers(1, 86_400),
)


@st.composite
def scalings(draw: st.DrawFn) -> Doc:
    mode = draw(st.sampled_from(["operator", "hpa", "none"]))
    low = draw(st.integers(1 if mode == "hpa" else 0, 50))
    high = draw(st.integers(max(low, 1), 1000))
    down = draw(st.integers(0, 98))
    target = draw(st.integers(down + 1, 100))
    doc = draw(
        _some(
            metric=st.sampled_from(["ActiveRequests", "TaskQueueDepth"]),
            cooldownPeriodSeconds=st.integers(0, 86_400),
            behavior=_some(
                scaleUp=_some(
                    stabilizationWindowSeconds=st.integers(0, 3600),
                    maxReplicasPerStep=st.integers(1, 1000),
                ),
                scaleDown=_some(
                    stabilizationWindowSeconds=st.integers(0, 3600),
                    maxReplicasPerStep=st.integers(1, 1000),
                ),
            ),
        )
    )
    return {
        **doc,
        "mode": mode,
        "minReplicas": low,
        "maxReplicas": high,
        "targetLoadPercent": target,
        "scaleDownLoadPercent": down,
    }


quantities = st.one_of(
    st.integers(0, 64),
    st.sampled_from(["250m", "1", "1.5", "512Mi", "2Gi", "100M"]),
)

env_vars = st.lists(
    st.one_of(
        st.fixed_dictionaries({"name": dns_labels, "value": texts}),
        st.fixed_dictionaries(
            {"name": dns_labels, "valueFrom": st.builds(lambda r: {"secretKeyRef": r}, secret_refs)}
        ),
        st.fixed_dictionaries(
            {
                "name": dns_labels,
                "valueFrom": st.builds(lambda r: {"configMapKeyRef": r}, secret_refs),
            }
        ),
    ),
    max_size=3,
    unique_by=lambda e: str(e["name"]),
)

tolerations = st.lists(
    st.one_of(
        st.fixed_dictionaries(
            {"key": dns_labels, "operator": st.just("Equal"), "value": dns_labels},
            optional={"effect": st.sampled_from(["NoSchedule", "PreferNoSchedule"])},
        ),
        st.fixed_dictionaries(
            {"operator": st.just("Exists"), "effect": st.just("NoExecute")},
            optional={"key": dns_labels, "tolerationSeconds": st.integers(0, 3600)},
        ),
    ),
    max_size=2,
)

templates = _some(
    image=st.builds(lambda n: f"registry.example.com/{n}:1.0", dns_labels),
    imagePullPolicy=st.sampled_from(["Always", "IfNotPresent", "Never"]),
    resources=_some(
        requests=st.dictionaries(st.sampled_from(["cpu", "memory"]), quantities, max_size=2),
        limits=st.dictionaries(st.sampled_from(["cpu", "memory"]), quantities, max_size=2),
    ),
    env=env_vars,
    nodeSelector=st.dictionaries(dns_labels, dns_labels, max_size=2),
    tolerations=tolerations,
    annotations=st.dictionaries(dns_labels, texts, max_size=2),
    serviceAccountName=dns_labels,
)


def pool_specs() -> st.SearchStrategy[Doc]:
    """AgentPool specs the models accept, from minimal to every section set."""
    return st.fixed_dictionaries(
        {"domain": dns_labels, "instructions": texts, "model": models},
        optional={
            "tools": tool_selections,
            "memory": memories,
            "resilience": resiliences,
            "cache": caches,
            "concurrencyPerReplica": st.integers(1, 1000),
            "replicas": st.integers(0, 1000),
            "scaling": scalings(),
            "template": templates,
        },
    )


# ---------------------------------------------------------------- AgentTool

json_types = st.sampled_from(["string", "integer", "number", "boolean"])
parameter_schemas = st.builds(
    lambda props, required: {
        "type": "object",
        "properties": {name: {"type": t, "description": d} for name, (t, d) in props.items()},
        "required": sorted(set(required) & set(props)),
    },
    st.dictionaries(dns_labels, st.tuples(json_types, texts), max_size=4),
    st.lists(dns_labels, max_size=3),
)

headers = st.lists(
    st.one_of(
        st.fixed_dictionaries({"name": header_names, "value": texts}),
        st.fixed_dictionaries({"name": st.just("Authorization"), "secretKeyRef": secret_refs}),
    ),
    max_size=3,
    unique_by=lambda h: str(h["name"]).lower(),
)

implementations = st.one_of(
    st.fixed_dictionaries(
        {
            "http": _some(
                method=st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE"]),
                headers=headers,
                timeoutSeconds=seconds,
            ).flatmap(lambda d: urls.map(lambda u: {**d, "url": u}))
        }
    ),
    st.builds(
        lambda binary, args, extra, doc: {
            "command": {**doc, "argv": [binary, *args], "allowedBinaries": [binary, *extra]}
        },
        st.sampled_from(["/usr/bin/grep", "/bin/echo", "jq"]),
        st.lists(st.sampled_from(["-n", "{query}", "--", "{path}"]), max_size=4),
        st.lists(st.sampled_from(["/usr/bin/wc", "/bin/cat"]), max_size=2),
        _some(
            timeoutSeconds=seconds,
            maxOutputBytes=st.integers(1, 16_777_216),
            workingDir=st.just("/srv"),
        ),
    ),
    st.builds(
        lambda url, name, doc: {"mcp": {**doc, "url": url, "toolName": name}},
        urls,
        texts,
        _some(transport=st.sampled_from(["StreamableHTTP", "SSE"]), headers=headers),
    ),
    st.builds(
        lambda pool, doc: {"agent": {**doc, "poolName": pool}},
        dns_labels,
        _some(timeoutSeconds=seconds),
    ),
)


@st.composite
def tool_specs(draw: st.DrawFn) -> Doc:
    """AgentTool specs the models accept: one implementation, consistent hints."""
    read_only = draw(st.booleans())
    hints = draw(_some(idempotentHint=st.booleans(), openWorldHint=st.booleans()))
    hints["readOnlyHint"] = read_only
    if not read_only and draw(st.booleans()):
        hints["destructiveHint"] = draw(st.booleans())
    spec: Doc = {"description": draw(texts), "hints": hints, **draw(implementations)}
    if draw(st.booleans()):
        spec["parameters"] = draw(parameter_schemas)
    if draw(st.booleans()):
        spec["resilience"] = draw(_some(circuitBreaker=circuit_breakers(), retry=retries()))
    if draw(st.booleans()):
        cache = draw(caches)
        if not read_only:
            cache["enabled"] = False
        spec["cache"] = cache
    return spec


# ---------------------------------------------------------------- rule probes

BASE_POOL: Doc = {
    "domain": "probe",
    "instructions": "Answer briefly.",
    "model": {"baseUrl": "http://llm.example.com/v1", "name": "m"},
}


@st.composite
def pool_rule_probes(draw: st.DrawFn) -> Doc:
    """Pool specs where a few cross-field rules may or may not hold; nothing else is off.

    Each probe exercises one or two groups of rules, so that about as many probes are
    accepted as refused.
    """
    groups = draw(
        st.sets(
            st.sampled_from(["scaling", "breaker", "retry", "redis", "episodic", "template"]),
            min_size=1,
            max_size=2,
        )
    )
    spec = copy.deepcopy(BASE_POOL)
    if "scaling" in groups:
        spec["scaling"] = {
            "mode": draw(st.sampled_from(["operator", "hpa", "none"])),
            "minReplicas": draw(st.integers(0, 3)),
            "maxReplicas": draw(st.integers(1, 3)),
            "targetLoadPercent": draw(st.integers(1, 4)),
            "scaleDownLoadPercent": draw(st.integers(0, 3)),
        }
    if "breaker" in groups:
        spec.setdefault("resilience", {})["circuitBreaker"] = {
            "slidingWindowType": draw(st.sampled_from(["CountBased", "TimeBased"])),
            "slidingWindowSize": draw(st.integers(1, 3)),
            "minimumNumberOfCalls": draw(st.integers(1, 3)),
        }
    if "retry" in groups:
        spec.setdefault("resilience", {})["retry"] = {
            "initialBackoffSeconds": draw(st.sampled_from([0.0, 0.5, 1.0, 2.0])),
            "maxBackoffSeconds": draw(st.sampled_from([0.0, 0.5, 1.0, 2.0])),
        }
    if "redis" in groups:
        redis: Doc = {}
        if draw(st.booleans()):
            redis["url"] = draw(st.sampled_from(["redis://r:6379/0", "redis://u:pw@r:6379/0"]))
        if draw(st.booleans()):
            redis["urlSecretRef"] = {"name": "redis", "key": "url"}
        spec.setdefault("memory", {})["redis"] = redis
    if "episodic" in groups:
        episodic: Doc = {"embedder": draw(st.sampled_from(["Hashing", "Endpoint"]))}
        if draw(st.booleans()):
            episodic["embeddingModel"] = "text-embedding-3-small"
        spec.setdefault("memory", {})["episodic"] = episodic
    if "template" in groups:
        toleration: Doc = {"operator": draw(st.sampled_from(["Equal", "Exists"])), "key": "k"}
        if draw(st.booleans()):
            toleration["value"] = "v"
        if draw(st.booleans()):
            toleration["effect"] = draw(st.sampled_from(["NoSchedule", "NoExecute"]))
        if draw(st.booleans()):
            toleration["tolerationSeconds"] = 60
        env: Doc = {"name": "E"}
        if draw(st.booleans()):
            env["value"] = "v"
        if draw(st.booleans()):
            env["valueFrom"] = draw(
                st.sampled_from(
                    [
                        {"secretKeyRef": {"name": "s", "key": "k"}},
                        {"configMapKeyRef": {"name": "c", "key": "k"}},
                        {},
                    ]
                )
            )
        spec["template"] = {"tolerations": [toleration], "env": [env]}
    return spec


@st.composite
def tool_rule_probes(draw: st.DrawFn) -> Doc:
    """Tool specs where every cross-field rule may or may not hold; nothing else is off."""
    spec: Doc = {"description": "probe"}
    kinds = st.sampled_from(["http", "command", "mcp", "agent"])
    # Mostly exactly one implementation (valid), sometimes none or two (refused).
    chosen = draw(
        st.one_of(kinds.map(lambda k: {k}), kinds.map(lambda k: {k}), st.sets(kinds, max_size=2))
    )
    binary = draw(st.sampled_from(["/bin/echo", "/bin/cat", "{x}"]))
    header: Doc = {"name": draw(st.sampled_from(["Authorization", "X-Api", "authorization"]))}
    if draw(st.booleans()):
        header["value"] = "v"
    if draw(st.booleans()):
        header["secretKeyRef"] = {"name": "s", "key": "k"}
    options = {
        "http": {"url": "https://api.example.com/x", "headers": [header]},
        "command": {"argv": [binary, "{x}"], "allowedBinaries": ["/bin/echo", "{x}"]},
        "mcp": {"url": "https://mcp.example.com/mcp", "toolName": "t"},
        "agent": {"poolName": "other"},
    }
    spec.update({name: options[name] for name in chosen})
    hints: Doc = {"readOnlyHint": draw(st.booleans())}
    if draw(st.booleans()):
        hints["destructiveHint"] = draw(st.booleans())
    spec["hints"] = hints
    if draw(st.booleans()):
        spec["cache"] = {"enabled": draw(st.booleans())}
    return spec
