"""Hypothesis strategies for AgentPool and AgentTool specs, as camelCase documents.

`pool_specs()` and `tool_specs()` draw specs the models accept (valid by construction,
over the whole surface: optional sections, unions, enums, bounds). `pool_rule_probes()`
and `tool_rule_probes()` draw specs that are valid except, maybe, for the cross-field
rules, so that the models' verdict can be compared with the API server's.
Shared by the unit tests and the integration tests against the real API server.
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import strategies as st

from agentpool_operator.api import quantity_value

Doc = dict[str, Any]


def _requests_within_limits(resources: Doc) -> Doc:
    """A request over its limit is refused (and tested as a refusal elsewhere)."""
    limits = resources.get("limits", {})
    requests = {
        k: v
        for k, v in resources.get("requests", {}).items()
        if k not in limits or quantity_value(v) <= quantity_value(limits[k])
    }
    return {**resources, "requests": requests} if "requests" in resources else resources


dns_labels = st.from_regex(r"[a-z]([a-z0-9-]{0,14}[a-z0-9])?", fullmatch=True)
# Printable text, including non-ASCII; no control characters or lone surrogates.
texts = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")),
    min_size=1,
    max_size=40,
)
words = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True)
header_names = st.from_regex(r"X-[A-Za-z0-9-]{1,12}", fullmatch=True)
urls = st.builds(
    lambda scheme, host, path: f"{scheme}://{host}.example.com/{path}",
    st.sampled_from(["http", "https"]),
    dns_labels,
    st.from_regex(r"[a-z0-9/_]{0,20}", fullmatch=True),
)
secret_refs = st.fixed_dictionaries({"name": dns_labels, "key": dns_labels})
name_refs = st.fixed_dictionaries({"name": dns_labels})
label_keys = st.one_of(
    dns_labels, st.builds(lambda p, n: f"{p}.example.com/{n}", dns_labels, dns_labels)
)
label_values = st.one_of(st.just(""), dns_labels)


def decimals(low: int, high: int) -> st.SearchStrategy[str]:
    """Decimal strings between two integer bounds, with up to three decimals."""
    return st.integers(low * 1000, high * 1000).map(
        lambda n: f"{n // 1000}" if n % 1000 == 0 else f"{n / 1000:.3f}".rstrip("0")
    )


def _some(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[Doc]:
    """A document with any subset of the given fields."""
    return st.fixed_dictionaries({}, optional=fields)


# ---------------------------------------------------------------- shared

headers = st.lists(
    st.one_of(
        st.fixed_dictionaries({"name": header_names, "value": texts}),
        st.fixed_dictionaries({"name": st.just("Authorization"), "secretKeyRef": secret_refs}),
    ),
    max_size=3,
    unique_by=lambda h: str(h["name"]).lower(),
)

label_selectors = _some(
    matchLabels=st.dictionaries(label_keys, label_values, max_size=3),
    matchExpressions=st.lists(
        st.one_of(
            st.fixed_dictionaries(
                {
                    "key": label_keys,
                    "operator": st.sampled_from(["In", "NotIn"]),
                    "values": st.lists(dns_labels, min_size=1, max_size=3),
                }
            ),
            st.fixed_dictionaries(
                {"key": label_keys, "operator": st.sampled_from(["Exists", "DoesNotExist"])}
            ),
        ),
        max_size=3,
    ),
)
non_empty_selectors = label_selectors.filter(
    lambda s: bool(s.get("matchLabels") or s.get("matchExpressions"))
)


@st.composite
def circuit_breakers(draw: st.DrawFn) -> Doc:
    doc = draw(
        _some(
            enabled=st.booleans(),
            failureRateThreshold=st.integers(1, 100),
            slowCallRateThreshold=st.integers(1, 100),
            slowCallDurationThresholdSeconds=st.integers(1, 3600),
            waitDurationInOpenStateSeconds=st.integers(1, 3600),
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
    low, high = sorted(draw(st.lists(st.integers(0, 600_000), min_size=2, max_size=2)))
    doc = draw(
        _some(
            maxAttempts=st.integers(1, 20),
            backoffMultiplier=decimals(1, 10),
            jitter=st.booleans(),
        )
    )
    return {**doc, "initialBackoffMilliseconds": low, "maxBackoffMilliseconds": high}


bulkheads = _some(
    maxConcurrentCalls=st.integers(1, 10_000), maxWaitMilliseconds=st.integers(0, 600_000)
)
rate_limits = _some(
    requestsPerSecond=st.integers(1, 100_000),
    burst=st.integers(1, 100_000),
    maxWaitMilliseconds=st.integers(0, 600_000),
)

resiliences = _some(
    circuitBreaker=circuit_breakers(),
    retry=retries(),
    timeoutSeconds=st.integers(1, 3600),
    bulkhead=bulkheads,
    rateLimit=rate_limits,
)

caches = _some(
    enabled=st.booleans(),
    maxEntries=st.integers(1, 1_000_000),
    ttlSeconds=st.integers(1, 86_400),
)

# ---------------------------------------------------------------- AgentPool sections

fallback_models = st.fixed_dictionaries(
    {"name": words}, optional={"baseUrl": urls, "apiKeySecretRef": secret_refs}
)

models = st.fixed_dictionaries(
    {"baseUrl": urls, "name": words},
    optional={
        "apiKeySecretRef": secret_refs,
        "headers": headers,
        "caBundle": st.one_of(
            st.builds(lambda r: {"configMapKeyRef": r}, secret_refs),
            st.builds(lambda r: {"secretKeyRef": r}, secret_refs),
        ),
        "timeoutSeconds": st.integers(1, 600),
        "temperature": decimals(0, 2),
        "topP": decimals(0, 1),
        "maxTokens": st.integers(1, 1_000_000),
        "contextWindowTokens": st.integers(1024, 10_000_000),
        "reasoning": _some(effort=st.sampled_from(["Low", "Medium", "High"])),
        "fallbacks": st.lists(fallback_models, max_size=3),
    },
)

tool_selections = _some(
    refs=st.lists(dns_labels, max_size=4, unique=True).map(
        lambda names: [{"name": n} for n in names]
    ),
    selector=non_empty_selectors,
)

redis_connections = st.one_of(
    st.builds(lambda host: {"url": f"redis://{host}:6379/0"}, dns_labels),
    st.builds(lambda ref: {"urlSecretRef": ref}, secret_refs),
)

episodic = st.one_of(
    _some(
        enabled=st.booleans(),
        embedder=st.just("Hashing"),
        dimensions=st.integers(8, 4096),
        importanceThreshold=decimals(0, 1),
    ),
    st.fixed_dictionaries(
        {"embedder": st.just("Endpoint"), "embeddingModel": words},
        optional={"enabled": st.booleans(), "recallLimit": st.integers(1, 50)},
    ),
)

memories = _some(
    redis=redis_connections,
    working=_some(capacity=st.integers(1, 100_000)),
    longTerm=_some(
        enabled=st.booleans(),
        ttlSeconds=st.integers(60, 31_536_000),
        importanceThreshold=decimals(0, 1),
    ),
    episodic=episodic,
)

scaling_rules = _some(
    stabilizationWindowSeconds=st.integers(0, 3600),
    selectPolicy=st.sampled_from(["Max", "Min", "Disabled"]),
    policies=st.lists(
        st.fixed_dictionaries(
            {
                "type": st.sampled_from(["Pods", "Percent"]),
                "value": st.integers(1, 10_000),
                "periodSeconds": st.integers(1, 1800),
            }
        ),
        max_size=3,
    ),
)
behaviors = _some(scaleUp=scaling_rules, scaleDown=scaling_rules)


@st.composite
def operator_scalings(draw: st.DrawFn, *, can_wake: bool) -> Doc:
    down = draw(st.integers(0, 98))
    target = draw(st.integers(down + 1, 100))
    signals = (
        ["ActiveTurnsAndQueuedTasks"] if can_wake else ["ActiveTurns", "ActiveTurnsAndQueuedTasks"]
    )
    doc = draw(
        _some(
            signal=st.sampled_from(signals),
            scaleUpWindowSeconds=st.integers(1, 600),
            scaleDownWindowSeconds=st.integers(1, 3600),
            cooldownPeriodSeconds=st.integers(0, 86_400),
            behavior=behaviors,
            fallback=_some(failureThreshold=st.integers(1, 1000), replicas=st.integers(0, 1000)),
        )
    )
    return {**doc, "targetLoadPercent": target, "scaleDownLoadPercent": down}


@st.composite
def scalings(draw: st.DrawFn) -> Doc:
    mode = draw(st.sampled_from(["Operator", "HPA", "None"]))
    low = draw(st.integers(1 if mode == "HPA" else 0, 50))
    high = draw(st.integers(max(low, 1), 1000))
    doc: Doc = {"mode": mode, "minReplicas": low, "maxReplicas": high}
    if mode == "Operator" and (low == 0 or draw(st.booleans())):
        doc["operator"] = draw(operator_scalings(can_wake=low == 0))
    if mode == "HPA" and draw(st.booleans()):
        doc["hpa"] = draw(
            _some(
                metric=st.sampled_from(["Load", "CPU", "Memory"]),
                targetPercent=st.integers(1, 1000),
                behavior=behaviors,
            )
        )
    return doc


quantities = st.one_of(
    st.integers(0, 64),
    st.sampled_from(["250m", "1", "1.5", "512Mi", "2Gi", "100M"]),
)

env_names = st.from_regex(r"[A-Z][A-Z0-9_]{0,10}", fullmatch=True).filter(
    lambda n: not n.startswith("AGENTPOOL_")
)
env_vars = st.lists(
    st.one_of(
        st.fixed_dictionaries({"name": env_names, "value": texts}),
        st.fixed_dictionaries(
            {"name": env_names, "valueFrom": st.builds(lambda r: {"secretKeyRef": r}, secret_refs)}
        ),
        st.fixed_dictionaries(
            {
                "name": env_names,
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
            {"key": label_keys, "operator": st.just("Equal"), "value": dns_labels},
            optional={"effect": st.sampled_from(["NoSchedule", "PreferNoSchedule"])},
        ),
        st.fixed_dictionaries(
            {"operator": st.just("Exists"), "effect": st.just("NoExecute")},
            optional={"key": label_keys, "tolerationSeconds": st.integers(0, 3600)},
        ),
    ),
    max_size=2,
)

node_terms = _some(
    matchExpressions=st.lists(
        st.one_of(
            st.fixed_dictionaries(
                {
                    "key": label_keys,
                    "operator": st.sampled_from(["In", "NotIn"]),
                    "values": st.lists(dns_labels, min_size=1, max_size=2),
                }
            ),
            st.fixed_dictionaries(
                {
                    "key": label_keys,
                    "operator": st.sampled_from(["Gt", "Lt"]),
                    "values": st.integers(0, 500).map(lambda n: [str(n)]),
                }
            ),
        ),
        max_size=2,
    )
)
pod_terms = st.fixed_dictionaries(
    {"topologyKey": label_keys},
    optional={
        "labelSelector": label_selectors,
        "namespaceSelector": label_selectors,
        "namespaces": st.lists(dns_labels, max_size=2),
    },
)
pod_affinities = _some(
    requiredDuringSchedulingIgnoredDuringExecution=st.lists(pod_terms, max_size=2),
    preferredDuringSchedulingIgnoredDuringExecution=st.lists(
        st.fixed_dictionaries({"weight": st.integers(1, 100), "podAffinityTerm": pod_terms}),
        max_size=2,
    ),
)
affinities = _some(
    nodeAffinity=_some(
        requiredDuringSchedulingIgnoredDuringExecution=st.fixed_dictionaries(
            {"nodeSelectorTerms": st.lists(node_terms, min_size=1, max_size=2)}
        ),
        preferredDuringSchedulingIgnoredDuringExecution=st.lists(
            st.fixed_dictionaries({"weight": st.integers(1, 100), "preference": node_terms}),
            max_size=2,
        ),
    ),
    podAffinity=pod_affinities,
    podAntiAffinity=pod_affinities,
)
spread_constraints = st.lists(
    st.one_of(
        st.fixed_dictionaries(
            {
                "maxSkew": st.integers(1, 5),
                "topologyKey": label_keys,
                "whenUnsatisfiable": st.just("DoNotSchedule"),
            },
            optional={"labelSelector": label_selectors, "minDomains": st.integers(1, 5)},
        ),
        st.fixed_dictionaries(
            {
                "maxSkew": st.integers(1, 5),
                "topologyKey": label_keys,
                "whenUnsatisfiable": st.just("ScheduleAnyway"),
            },
            optional={"labelSelector": label_selectors},
        ),
    ),
    max_size=2,
    unique_by=lambda c: (c["topologyKey"], c["whenUnsatisfiable"]),
)
seccomp = st.one_of(
    st.just({"type": "RuntimeDefault"}),
    st.just({"type": "Localhost", "localhostProfile": "profiles/agent.json"}),
)
uids = st.integers(1, 2_147_483_647)
pod_security = _some(
    runAsUser=uids,
    runAsGroup=uids,
    runAsNonRoot=st.booleans(),
    fsGroup=uids,
    fsGroupChangePolicy=st.sampled_from(["OnRootMismatch", "Always"]),
    supplementalGroups=st.lists(uids, max_size=2),
    seccompProfile=seccomp,
)
container_security = _some(
    runAsUser=uids,
    runAsGroup=uids,
    runAsNonRoot=st.booleans(),
    readOnlyRootFilesystem=st.booleans(),
    allowPrivilegeEscalation=st.booleans(),
    capabilities=_some(
        add=st.lists(st.just("NET_BIND_SERVICE"), max_size=1),
        drop=st.lists(st.sampled_from(["ALL", "NET_RAW"]), max_size=2, unique=True),
    ),
    seccompProfile=seccomp,
)
key_paths = st.lists(
    st.fixed_dictionaries(
        {"key": dns_labels, "path": st.from_regex(r"[a-z]{1,8}(/[a-z]{1,8})?", fullmatch=True)}
    ),
    max_size=2,
)
volume_sources = st.one_of(
    st.builds(
        lambda name, items: {"configMap": {"name": name, "items": items}}, dns_labels, key_paths
    ),
    st.builds(
        lambda name, mode: {"secret": {"secretName": name, "defaultMode": mode}},
        dns_labels,
        st.integers(0, 0o777),
    ),
    st.builds(
        lambda medium: {"emptyDir": {"medium": medium, "sizeLimit": "64Mi"}},
        st.sampled_from(["", "Memory"]),
    ),
    st.builds(lambda claim: {"persistentVolumeClaim": {"claimName": claim}}, dns_labels),
)


@st.composite
def volumes_and_mounts(draw: st.DrawFn) -> Doc:
    names = draw(st.lists(dns_labels, max_size=3, unique=True))
    volumes = [{"name": n, **draw(volume_sources)} for n in names]
    mounts = [
        {"name": n, "mountPath": f"/data/{i}", "readOnly": draw(st.booleans())}
        for i, n in enumerate(names)
        if draw(st.booleans())
    ]
    doc: Doc = {}
    if volumes:
        doc["volumes"] = volumes
    if mounts:
        doc["volumeMounts"] = mounts
    return doc


@st.composite
def pod_templates(draw: st.DrawFn) -> Doc:
    doc = draw(
        _some(
            image=st.builds(lambda n: f"registry.example.com/{n}:1.0", dns_labels),
            imagePullPolicy=st.sampled_from(["Always", "IfNotPresent", "Never"]),
            imagePullSecrets=st.lists(dns_labels, max_size=2, unique=True).map(
                lambda ns: [{"name": n} for n in ns]
            ),
            labels=st.dictionaries(dns_labels, label_values, max_size=2),
            annotations=st.dictionaries(label_keys, texts, max_size=2),
            resources=_some(
                requests=st.dictionaries(
                    st.sampled_from(["cpu", "memory"]), quantities, max_size=2
                ),
                limits=st.dictionaries(st.sampled_from(["cpu", "memory"]), quantities, max_size=2),
            ).map(_requests_within_limits),
            env=env_vars,
            envFrom=st.lists(
                st.one_of(
                    st.builds(lambda r: {"configMapRef": r}, name_refs),
                    st.builds(lambda r, p: {"secretRef": r, "prefix": p}, name_refs, env_names),
                ),
                max_size=2,
            ),
            nodeSelector=st.dictionaries(label_keys, label_values, max_size=2),
            tolerations=tolerations,
            affinity=affinities,
            topologySpreadConstraints=spread_constraints,
            priorityClassName=dns_labels,
            securityContext=pod_security,
            containerSecurityContext=container_security,
            terminationGracePeriodSeconds=st.integers(1, 86_400),
        )
    )
    doc.update(draw(volumes_and_mounts()))
    account = draw(st.sampled_from(["none", "name", "made"]))
    if account == "name":
        doc["serviceAccountName"] = draw(dns_labels)
    elif account == "made":
        doc["serviceAccount"] = {
            "annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/agents"}
        }
    return doc


network_policies = _some(
    enabled=st.booleans(),
    allowedCallers=st.lists(
        st.one_of(
            st.builds(lambda s: {"podSelector": s}, label_selectors),
            st.builds(lambda s: {"namespaceSelector": s}, label_selectors),
        ),
        max_size=2,
    ),
)


@st.composite
def pool_specs(draw: st.DrawFn) -> Doc:
    """AgentPool specs the models accept, from minimal to every section set."""
    spec = draw(
        _some(
            domain=dns_labels,
            tools=tool_selections,
            memory=memories,
            resilience=resiliences,
            cache=caches,
            concurrencyPerReplica=st.integers(1, 1000),
            podTemplate=pod_templates(),
            disruptionBudget=_some(
                enabled=st.booleans(),
                maxUnavailable=st.one_of(st.integers(0, 5), st.sampled_from(["25%", "100%"])),
            ),
            networkPolicy=network_policies,
        )
    )
    spec["model"] = draw(models)
    if draw(st.booleans()):
        spec["instructions"] = draw(texts)
    else:
        spec["instructionsFrom"] = {"configMapKeyRef": draw(secret_refs)}
    if draw(st.booleans()):
        scaling = draw(scalings())
        spec["scaling"] = scaling
        low, high = scaling["minReplicas"], scaling["maxReplicas"]
    else:
        low, high = 1, 10
    if draw(st.booleans()):
        spec["replicas"] = draw(st.integers(low, high))
    return spec


# ---------------------------------------------------------------- AgentTool

json_types = st.sampled_from(["string", "integer", "number", "boolean"])
argument_names = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True)
parameter_schemas = st.builds(
    lambda props, required: {
        "type": "object",
        "properties": {name: {"type": t, "description": d} for name, (t, d) in props.items()},
        "required": sorted(set(required) & set(props)),
    },
    st.dictionaries(argument_names, st.tuples(json_types, texts), max_size=4),
    st.lists(argument_names, max_size=3),
)


@st.composite
def implementations(draw: st.DrawFn, parameters: Doc) -> Doc:
    declared = sorted(parameters.get("properties", {}))
    placeholders = st.sampled_from([f"{{{n}}}" for n in declared]) if declared else st.nothing()
    kind = draw(st.sampled_from(["http", "command", "mcp", "agent"]))
    if kind == "http":
        url = draw(urls)
        if declared and draw(st.booleans()):
            url = f"{url.rstrip('/')}/{draw(placeholders)}"
        return {
            "http": {
                **draw(
                    _some(
                        method=st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE"]),
                        headers=headers,
                        timeoutSeconds=st.integers(1, 600),
                        maxResponseBytes=st.integers(1, 67_108_864),
                    )
                ),
                "url": url,
            }
        }
    if kind == "command":
        binary = draw(st.sampled_from(["/usr/bin/grep", "/bin/echo", "jq"]))
        literal = st.sampled_from(["-n", "--", "--max-count=3", "/srv/data"])
        argument = st.one_of(literal, placeholders.map(lambda p: f"--value={p}"), placeholders)
        return {
            "command": {
                **draw(
                    _some(
                        timeoutSeconds=st.integers(1, 3600),
                        maxOutputBytes=st.integers(1, 16_777_216),
                        workingDir=st.just("/srv"),
                        limits=_some(
                            cpuSeconds=st.integers(1, 3600),
                            memory=st.sampled_from(["64Mi", "1Gi", "512M", 268435456]),
                            fileSize=st.sampled_from(["0", "1Mi", "16Mi"]),
                            processes=st.integers(1, 4096),
                        ),
                        env=st.lists(
                            st.fixed_dictionaries({"name": env_names, "value": texts}),
                            max_size=2,
                            unique_by=lambda e: str(e["name"]),
                        ),
                        allowPaths=st.booleans(),
                    )
                ),
                "argv": [binary, *draw(st.lists(argument, max_size=4))],
                "allowedBinaries": [binary, *draw(st.lists(st.just("/bin/cat"), max_size=1))],
            }
        }
    if kind == "mcp":
        names = draw(st.lists(words, max_size=3, unique=True))
        doc: Doc = {"url": draw(urls)}
        if names:
            doc["toolNames"] = names
            doc["requireApproval"] = draw(st.lists(st.sampled_from(names), unique=True))
        return {
            "mcp": {
                **doc,
                **draw(_some(headers=headers, timeoutSeconds=st.integers(1, 600))),
            }
        }
    return {
        "agent": {
            **draw(
                _some(timeoutSeconds=st.integers(1, 3600), maxResponseBytes=st.integers(1, 1 << 26))
            ),
            "poolName": draw(dns_labels),
        }
    }


tool_names = st.from_regex(r"[a-z][a-z0-9-]{0,20}[a-z0-9]", fullmatch=True)


@st.composite
def tool_specs(draw: st.DrawFn) -> Doc:
    """AgentTool specs the models accept: one implementation, consistent hints."""
    read_only = draw(st.booleans())
    hints = draw(_some(idempotentHint=st.booleans(), openWorldHint=st.booleans()))
    hints["readOnlyHint"] = read_only
    if not read_only and draw(st.booleans()):
        hints["destructiveHint"] = draw(st.booleans())
    parameters = draw(parameter_schemas)
    spec: Doc = {"description": draw(texts), "hints": hints, **draw(implementations(parameters))}
    if "http" in spec or "command" in spec:
        spec["parameters"] = parameters
    if draw(st.booleans()):
        spec["requireApproval"] = draw(st.booleans())
    if "mcp" not in spec and draw(st.booleans()):
        spec["resultSchema"] = draw(parameter_schemas)
    if draw(st.booleans()):
        spec["resilience"] = draw(
            _some(
                circuitBreaker=_some(
                    enabled=st.booleans(),
                    failureRateThreshold=st.integers(1, 100),
                    slidingWindowType=st.sampled_from(["CountBased", "TimeBased"]),
                    slidingWindowSize=st.integers(1, 10_000),
                    minimumNumberOfCalls=st.integers(1, 10_000),
                ),
                retry=_some(
                    maxAttempts=st.integers(1, 20),
                    initialBackoffMilliseconds=st.integers(0, 600_000),
                    maxBackoffMilliseconds=st.integers(0, 600_000),
                    backoffMultiplier=decimals(1, 10),
                ),
                timeoutSeconds=st.integers(1, 3600),
                bulkhead=bulkheads,
                rateLimit=rate_limits,
            )
        )
    if draw(st.booleans()):
        cache = draw(_some(enabled=st.booleans(), ttlSeconds=st.integers(1, 86_400)))
        if not read_only:
            cache.pop("enabled", None)
        spec["cache"] = cache
    if draw(st.booleans()):
        spec["fallback"] = draw(_some(tools=st.lists(tool_names, max_size=2), message=texts))
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
            st.sampled_from(
                [
                    "scaling",
                    "replicas",
                    "breaker",
                    "retry",
                    "redis",
                    "episodic",
                    "template",
                    "instructions",
                    "selector",
                    "volumes",
                ]
            ),
            min_size=1,
            max_size=2,
        )
    )
    spec = copy.deepcopy(BASE_POOL)
    if "scaling" in groups or "replicas" in groups:
        mode = draw(st.sampled_from(["Operator", "HPA", "None"]))
        scaling: Doc = {
            "mode": mode,
            "minReplicas": draw(st.integers(0, 3)),
            "maxReplicas": draw(st.integers(1, 3)),
        }
        section = draw(st.sampled_from(["operator", "hpa", None]))
        if section == "operator":
            scaling["operator"] = {
                "signal": draw(st.sampled_from(["ActiveTurns", "ActiveTurnsAndQueuedTasks"])),
                "targetLoadPercent": draw(st.integers(1, 4)),
                "scaleDownLoadPercent": draw(st.integers(0, 3)),
            }
        elif section == "hpa":
            scaling["hpa"] = {"metric": "Load"}
        spec["scaling"] = scaling
        if "replicas" in groups:
            spec["replicas"] = draw(st.integers(0, 4))
    if "breaker" in groups:
        spec.setdefault("resilience", {})["circuitBreaker"] = {
            "slidingWindowType": draw(st.sampled_from(["CountBased", "TimeBased"])),
            "slidingWindowSize": draw(st.integers(1, 3)),
            "minimumNumberOfCalls": draw(st.integers(1, 3)),
        }
    if "retry" in groups:
        spec.setdefault("resilience", {})["retry"] = {
            "initialBackoffMilliseconds": draw(st.sampled_from([0, 500, 1000, 2000])),
            "maxBackoffMilliseconds": draw(st.sampled_from([0, 500, 1000, 2000])),
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
    if "instructions" in groups:
        if draw(st.booleans()):
            del spec["instructions"]
        if draw(st.booleans()):
            spec["instructionsFrom"] = {"configMapKeyRef": {"name": "prompts", "key": "agent"}}
    if "selector" in groups:
        selector: Doc = {}
        if draw(st.booleans()):
            selector["matchLabels"] = {"tier": "a"}
        spec["tools"] = {"selector": selector}
    if "template" in groups:
        toleration: Doc = {"operator": draw(st.sampled_from(["Equal", "Exists"]))}
        if draw(st.booleans()):
            toleration["key"] = "k"
        if draw(st.booleans()):
            toleration["value"] = "v"
        if draw(st.booleans()):
            toleration["effect"] = draw(st.sampled_from(["NoSchedule", "NoExecute"]))
        if draw(st.booleans()):
            toleration["tolerationSeconds"] = 60
        env: Doc = {"name": draw(st.sampled_from(["E", "AGENTPOOL_X"]))}
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
        template: Doc = {"tolerations": [toleration], "env": [env]}
        if draw(st.booleans()):
            template["serviceAccountName"] = "agents"
        if draw(st.booleans()):
            template["serviceAccount"] = {}
        spec["podTemplate"] = template
    if "volumes" in groups:
        volume: Doc = {"name": draw(st.sampled_from(["data", "agentpool-data"]))}
        for source in draw(
            st.sets(st.sampled_from(["emptyDir", "configMap"]), min_size=0, max_size=2)
        ):
            volume[source] = {} if source == "emptyDir" else {"name": "c"}
        mount = {
            "name": draw(st.sampled_from(["data", "other"])),
            "mountPath": draw(st.sampled_from(["/data", "/tmp/x", "/etc/agentpool"])),
        }
        spec["podTemplate"] = {"volumes": [volume], "volumeMounts": [mount]}
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
    placeholder = draw(st.sampled_from(["{x}", "{y}", "", "--n={x}{y}"]))
    mcp: Doc = {"url": "https://mcp.example.com/mcp"}
    if draw(st.booleans()):
        mcp["toolNames"] = ["a"]
    if draw(st.booleans()):
        mcp["requireApproval"] = [draw(st.sampled_from(["a", "b"]))]
    options = {
        "http": {"url": f"https://api.example.com/x/{placeholder}", "headers": [header]},
        "command": {
            "argv": [binary, *([placeholder] if placeholder else [])],
            "allowedBinaries": ["/bin/echo", "{x}"],
        },
        "mcp": mcp,
        "agent": {"poolName": "other"},
    }
    spec.update({name: options[name] for name in chosen})
    if draw(st.booleans()):
        spec["parameters"] = {"type": "object", "properties": {"x": {"type": "string"}}}
    hints: Doc = {"readOnlyHint": draw(st.booleans())}
    if draw(st.booleans()):
        hints["destructiveHint"] = draw(st.booleans())
    spec["hints"] = hints
    if draw(st.booleans()):
        spec["cache"] = {"enabled": draw(st.booleans())}
    return spec
