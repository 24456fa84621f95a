"""The agent workload: the runtime's ConfigMap, the ServiceAccount and the Deployment.

The pods pass the `restricted` Pod Security Standard unless the pool's podTemplate
weakens its own security context: non-root uid 65532, no privilege escalation, every
capability dropped, the RuntimeDefault seccomp profile and a read-only root file system
with only /tmp writable.
"""

from __future__ import annotations

from typing import Any

from agent_runtime.config import dump_runtime_config
from agent_runtime.config.drain import pre_stop_command, termination_grace_period_seconds
from agentpool_operator import api
from agentpool_operator.render import names
from agentpool_operator.render.config import (
    CONFIG_DIR,
    CONFIG_FILE,
    IDENTITY_DIR,
    KUBE_API_DIR,
    RUNNER_DIR,
    RUNNER_SOCKET,
    MountedFile,
    RenderedConfig,
    audience,
)

AGENT_CONTAINER = "agent"
AGENT_UID = 65532
CONFIG_KEY = "config.json"
CONFIG_VOLUME = "agentpool-config"
TMP_VOLUME = "agentpool-tmp"
RUN_VOLUME = "agentpool-run"
RUN_DIR = "/run/agentpool"
KUBE_API_VOLUME = "agentpool-kube-api"
RUNNER_CONTAINER = "tool-runner"
RUNNER_UID = 65533
RUNNER_SOCKET_VOLUME = "agentpool-tools-socket"
RUNNER_TMP_VOLUME = "agentpool-runner-tmp"
RUNNER_RESOURCES: dict[str, dict[str, str]] = {
    "requests": {"cpu": "50m", "memory": "64Mi", "ephemeral-storage": "64Mi"},
    "limits": {"cpu": "1", "memory": "512Mi", "ephemeral-storage": "1Gi"},
}
IDENTITY_VOLUME = "agentpool-identity"
TOKEN_SECONDS = 3600

DEFAULT_RESOURCES: dict[str, dict[str, str]] = {
    "requests": {"cpu": "100m", "memory": "256Mi", "ephemeral-storage": "64Mi"},
    "limits": {"cpu": "2", "memory": "1Gi", "ephemeral-storage": "1Gi"},
}


def _dump(model: api.ApiModel) -> dict[str, Any]:
    # The API models mirror the Kubernetes types field for field (camelCase aliases).
    dumped: dict[str, Any] = model.model_dump(mode="json", by_alias=True, exclude_none=True)
    return dumped


def _resources(spec: api.ResourceRequirements | None) -> dict[str, dict[str, str | int]]:
    """The pool's resources merged key by key over the defaults; a default limit below
    what the pool requests is raised to the request, a default request above what the
    pool limits is lowered to the limit."""
    requests: dict[str, str | int] = {**DEFAULT_RESOURCES["requests"]}
    limits: dict[str, str | int] = {**DEFAULT_RESOURCES["limits"]}
    if spec is not None:
        for name, limit in spec.limits.items():
            # A default request above the pool's own limit would make the pod invalid.
            default = requests.get(name)
            over = default is not None and api.quantity_value(default) > api.quantity_value(limit)
            if name not in spec.requests and over:
                requests[name] = limit
        requests.update(spec.requests)
        for name, value in DEFAULT_RESOURCES["limits"].items():
            wanted = spec.requests.get(name)
            below = wanted is not None and api.quantity_value(wanted) > api.quantity_value(value)
            if name not in spec.limits and wanted is not None and below:
                limits[name] = wanted
        limits.update(spec.limits)
    return {"requests": requests, "limits": limits}


def config_map(pool: api.AgentPool, rendered: RenderedConfig) -> dict[str, Any]:
    """The ConfigMap holding the runtime config every replica reads."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": names.metadata(pool, names.config_map_name(pool.metadata.name)),
        "data": {CONFIG_KEY: dump_runtime_config(rendered.config)},
    }


def service_account(pool: api.AgentPool) -> dict[str, Any] | None:
    """The pods' ServiceAccount, unless the pool names an existing one."""
    template = pool.spec.pod_template
    if template.service_account_name is not None:
        return None
    meta = names.metadata(pool)
    if template.service_account is not None and template.service_account.annotations:
        meta["annotations"] = dict(sorted(template.service_account.annotations.items()))
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": meta,
        # The agents do not talk to the API server; a pool that calls another pool uses a
        # projected token with its own audience, which this does not turn off.
        "automountServiceAccountToken": False,
    }


def _pod_security(template: api.PodTemplate) -> dict[str, Any]:
    context: dict[str, Any] = {
        "runAsNonRoot": True,
        "runAsUser": AGENT_UID,
        "runAsGroup": AGENT_UID,
        "fsGroup": AGENT_UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if template.security_context is not None:
        context.update(_dump(template.security_context))
    return context


def _container_security(template: api.PodTemplate) -> dict[str, Any]:
    context: dict[str, Any] = {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if template.container_security_context is not None:
        context.update(_dump(template.container_security_context))
    return context


def _files_volume(pool: api.AgentPool, files: tuple[MountedFile, ...]) -> dict[str, Any]:
    """One projected volume at CONFIG_DIR: the config document plus every mounted file."""
    sources: list[dict[str, Any]] = [
        {
            "configMap": {
                "name": names.config_map_name(pool.metadata.name),
                "items": [{"key": CONFIG_KEY, "path": CONFIG_KEY}],
            }
        }
    ]
    for file in files:
        relative = file.path.removeprefix(CONFIG_DIR + "/")
        if file.config_map is not None:
            ref = file.config_map
            sources.append(
                {"configMap": {"name": ref.name, "items": [{"key": ref.key, "path": relative}]}}
            )
        elif file.secret is not None:
            secret = file.secret
            sources.append(
                {"secret": {"name": secret.name, "items": [{"key": secret.key, "path": relative}]}}
            )
    return {"name": CONFIG_VOLUME, "projected": {"sources": sources}}


def _credential_volumes(rendered: RenderedConfig) -> list[tuple[dict[str, Any], str]]:
    """Projected tokens: the pod's own, to ask TokenReviews, when callers are checked; and
    one per agent tool with the called pool's audience (a token one pool receives cannot
    be replayed against another)."""
    found: list[tuple[dict[str, Any], str]] = []
    config = rendered.config
    if config.auth.service_accounts is not None:
        volume = {
            "name": KUBE_API_VOLUME,
            "projected": {
                "sources": [
                    {"serviceAccountToken": {"path": "token", "expirationSeconds": TOKEN_SECONDS}},
                    {
                        "configMap": {
                            "name": "kube-root-ca.crt",
                            "items": [{"key": "ca.crt", "path": "ca.crt"}],
                        }
                    },
                ]
            },
        }
        found.append((volume, KUBE_API_DIR))
    tokens = []
    for tool in config.tools.definitions:
        agent = tool.agent
        if agent is None or agent.token_file is None or agent.pool is None:
            continue
        tokens.append(
            {
                "serviceAccountToken": {
                    "path": str(agent.token_file).removeprefix(IDENTITY_DIR + "/"),
                    "audience": audience(agent.namespace or config.pool.namespace, agent.pool),
                    "expirationSeconds": TOKEN_SECONDS,
                }
            }
        )
    if tokens:
        found.append(({"name": IDENTITY_VOLUME, "projected": {"sources": tokens}}, IDENTITY_DIR))
    return found


def _env(pool: api.AgentPool, rendered: RenderedConfig, port: int) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [
        {"name": "AGENTPOOL_CONFIG", "value": CONFIG_FILE},
        {"name": "AGENTPOOL_PORT", "value": str(port)},
        {"name": "AGENTPOOL_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {
            "name": "AGENTPOOL_POD_NAMESPACE",
            "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
        },
    ]
    for var in rendered.secret_env:
        env.append(
            {
                "name": var.name,
                "valueFrom": {"secretKeyRef": {"name": var.secret.name, "key": var.secret.key}},
            }
        )
    env.extend(_dump(v) for v in pool.spec.pod_template.env)
    return env


def _probe(path: str, *, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def agent_container(
    pool: api.AgentPool, rendered: RenderedConfig, image: str, port: int
) -> dict[str, Any]:
    """The container running `agentpool-agent`."""
    template = pool.spec.pod_template
    container: dict[str, Any] = {
        "name": AGENT_CONTAINER,
        "image": template.image or image,
        "imagePullPolicy": template.image_pull_policy or "IfNotPresent",
        "args": ["--config", CONFIG_FILE, "--port", str(port)],
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "env": _env(pool, rendered, port),
        "resources": _resources(template.resources),
        # Liveness asks only "is the process serving"; readiness also asks whether the
        # replica takes turns (not draining, dependencies usable): a dependency outage
        # makes pods unready, never restarts them.
        "startupProbe": _probe("/healthz", period=2, failures=30),
        "livenessProbe": _probe("/healthz", period=10, failures=3),
        "readinessProbe": _probe("/readyz", period=5, failures=2),
        "lifecycle": {
            # The replica turns unready (the endpoints controller stops sending it
            # traffic), takes no new turns or tasks, and the hook returns once the turns
            # it holds have finished; SIGTERM then hands unfinished tasks back.
            "preStop": {"exec": {"command": pre_stop_command(rendered.config.agent, port)}}
        },
        "securityContext": _container_security(template),
        "volumeMounts": [
            {"name": CONFIG_VOLUME, "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": TMP_VOLUME, "mountPath": "/tmp"},  # noqa: S108 - the pod's own scratch space
            {"name": RUN_VOLUME, "mountPath": RUN_DIR},
            *(
                {"name": volume["name"], "mountPath": path, "readOnly": True}
                for volume, path in _credential_volumes(rendered)
            ),
            *(_dump(m) for m in template.volume_mounts),
        ],
    }
    if template.env_from:
        container["envFrom"] = [_dump(e) for e in template.env_from]
    return container


def tool_runner(image: str) -> dict[str, Any]:
    """The sidecar command tools run in: another uid, a clean environment, no Secret, no
    config, no token; the only thing it shares with the agent is the socket's emptyDir."""
    return {
        "name": RUNNER_CONTAINER,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        # `command` replaces the image's entry point: keep tini as PID 1 (it reaps).
        "command": ["/usr/bin/tini", "--", "agentpool-tool-runner"],
        "args": [f"--socket={RUNNER_SOCKET}", f"--allowed-uid={AGENT_UID}", "--work-root=/tmp"],
        "resources": RUNNER_RESOURCES,
        "securityContext": {
            "runAsUser": RUNNER_UID,
            "runAsGroup": RUNNER_UID,
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [
            {"name": RUNNER_SOCKET_VOLUME, "mountPath": RUNNER_DIR},
            {"name": RUNNER_TMP_VOLUME, "mountPath": "/tmp"},  # noqa: S108 - the runner's own scratch
        ],
    }


def pod_spec(
    pool: api.AgentPool, rendered: RenderedConfig, image: str, port: int
) -> dict[str, Any]:
    template = pool.spec.pod_template
    runner = rendered.config.tools.command_runner is not None
    agent = agent_container(pool, rendered, image, port)
    containers = [agent]
    runner_volumes: list[dict[str, Any]] = []
    if runner:
        agent["volumeMounts"].append({"name": RUNNER_SOCKET_VOLUME, "mountPath": RUNNER_DIR})
        containers.append(tool_runner(agent["image"]))
        runner_volumes = [
            {"name": RUNNER_SOCKET_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
            {"name": RUNNER_TMP_VOLUME, "emptyDir": {"sizeLimit": "1Gi"}},
        ]
    spec: dict[str, Any] = {
        "serviceAccountName": template.service_account_name or pool.metadata.name,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        # Never shorter than a drain: the longest turn plus the shutdown after it.
        "terminationGracePeriodSeconds": max(
            template.termination_grace_period_seconds,
            termination_grace_period_seconds(rendered.config.agent),
        ),
        "securityContext": _pod_security(template),
        "containers": containers,
        "volumes": [
            _files_volume(pool, rendered.files),
            {"name": TMP_VOLUME, "emptyDir": {"sizeLimit": "256Mi"}},
            {"name": RUN_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
            *(volume for volume, _ in _credential_volumes(rendered)),
            *runner_volumes,
            *(_dump(v) for v in template.volumes),
        ],
    }
    optional: dict[str, Any] = {
        "imagePullSecrets": [_dump(s) for s in template.image_pull_secrets],
        "nodeSelector": dict(sorted(template.node_selector.items())),
        "tolerations": [_dump(t) for t in template.tolerations],
        "affinity": _dump(template.affinity) if template.affinity is not None else {},
        "topologySpreadConstraints": [_dump(t) for t in template.topology_spread_constraints],
        "priorityClassName": template.priority_class_name,
    }
    spec.update({k: v for k, v in optional.items() if v})
    return spec


def deployment(
    pool: api.AgentPool,
    rendered: RenderedConfig,
    *,
    config_hash: str,
    replicas: int | None,
    image: str,
    port: int,
) -> dict[str, Any]:
    """The agents' Deployment. `replicas` None leaves the field to whoever owns it."""
    name = pool.metadata.name
    template = pool.spec.pod_template
    pod_labels = {**dict(sorted(template.labels.items())), **names.child_labels(name)}
    pod_annotations = {
        **dict(sorted(template.annotations.items())),
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(port),
        "prometheus.io/path": "/metrics",
        names.CONFIG_HASH_ANNOTATION: config_hash,
    }
    spec: dict[str, Any] = {
        "selector": {"matchLabels": names.selector_labels(name)},
        "strategy": {
            "type": "RollingUpdate",
            # A rollout never lowers serving capacity: new pods first, then old ones drain.
            "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"},
        },
        "revisionHistoryLimit": 3,
        "template": {
            "metadata": {"labels": pod_labels, "annotations": pod_annotations},
            "spec": pod_spec(pool, rendered, image, port),
        },
    }
    if replicas is not None:
        spec = {"replicas": replicas, **spec}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": names.metadata(pool),
        "spec": spec,
    }
