"""What the kubelet would run for one agent pod, read from the Pod object alone (pure).

The runner never asks the operator how it renders a pool: like a kubelet, it reads the
pod's spec (the agent container's args, env, mounts and preStop hook, the volumes, the
grace period), so whatever the operator renders is what runs, and a rendering bug shows
here as it would on a node.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

AGENT_CONTAINER = "agent"
POOL_LABEL = "agentpool.dev/pool"
DEFAULT_SELECTOR = "app.kubernetes.io/managed-by=agentpool-operator,agentpool.dev/pool"
"""Every agent pod of every AgentPool (the labels the operator puts on its pods)."""
DEFAULT_GRACE_SECONDS = 30
"""Kubernetes' default terminationGracePeriodSeconds."""


@dataclass(frozen=True)
class KeyFile:
    """Files of a mount filled from a ConfigMap or Secret (one key, or every key)."""

    kind: Literal["configMap", "secret"]
    name: str
    key: str | None
    """None: every key of the object, each as a file named after it."""
    path: str
    """Relative to the mount (ignored when `key` is None)."""
    optional: bool = False


@dataclass(frozen=True)
class TokenFile:
    """A projected ServiceAccount token (the kubelet asks the TokenRequest API)."""

    path: str
    audience: str | None
    expiration_seconds: int


@dataclass(frozen=True)
class Mount:
    """A volume as the agent container sees it; no files: an empty directory."""

    container_path: str
    volume: str
    files: tuple[KeyFile | TokenFile, ...] = ()
    emulated: bool = True
    """False for volume kinds the runner cannot play (a PVC, a host path): an empty dir."""
    read_only: bool = False
    """The mount's `readOnly` (image mode binds it read-only)."""


@dataclass(frozen=True)
class EnvVar:
    """One `env` entry: a literal, a field of the pod, or a Secret or ConfigMap key."""

    name: str
    value: str | None = None
    field_path: str | None = None
    secret: tuple[str, str] | None = None
    config_map: tuple[str, str] | None = None
    optional: bool = False


@dataclass(frozen=True)
class EnvFrom:
    """One `envFrom` entry: every key of a Secret or ConfigMap."""

    kind: Literal["configMap", "secret"]
    name: str
    prefix: str = ""
    optional: bool = False


@dataclass(frozen=True)
class PodPlan:
    """Everything needed to start, probe and stop the agent container of one pod."""

    namespace: str
    name: str
    uid: str
    pool: str
    service_account: str
    node_name: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    command: tuple[str, ...]
    """The image's entry point (`agentpool-agent`) unless the container sets `command`."""
    image_entrypoint: bool
    """Whether `command` stands for the image's entry point (the container sets none)."""
    args: tuple[str, ...]
    env: tuple[EnvVar, ...]
    env_from: tuple[EnvFrom, ...]
    mounts: tuple[Mount, ...]
    container_port: int
    readiness_path: str
    pre_stop: tuple[str, ...] | None
    grace_seconds: int
    run_as_user: int | None = None
    """The securityContext's uid (the container's over the pod's); None: the image's."""
    run_as_group: int | None = None


def is_wanted(pod: Mapping[str, Any]) -> bool:
    """Whether the cluster wants this pod's process running: Running and not deleting."""
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    return status.get("phase") == "Running" and not meta.get("deletionTimestamp")


def _key_files(kind: Literal["configMap", "secret"], source: Mapping[str, Any]) -> list[KeyFile]:
    name = str(source.get("name") or source.get("secretName") or "")
    optional = bool(source.get("optional", False))
    items = source.get("items") or []
    if not items:
        return [KeyFile(kind, name, None, "", optional)]
    return [KeyFile(kind, name, str(i["key"]), str(i["path"]), optional) for i in items]


def _volume_files(volume: Mapping[str, Any]) -> tuple[tuple[KeyFile | TokenFile, ...], bool]:
    """The files a volume holds, and whether the runner can play its kind."""
    if "emptyDir" in volume:
        return (), True
    if "configMap" in volume:
        return tuple(_key_files("configMap", volume["configMap"])), True
    if "secret" in volume:
        return tuple(_key_files("secret", volume["secret"])), True
    if "projected" in volume:
        files: list[KeyFile | TokenFile] = []
        for source in (volume["projected"] or {}).get("sources") or []:
            if "configMap" in source:
                files.extend(_key_files("configMap", source["configMap"]))
            elif "secret" in source:
                files.extend(_key_files("secret", source["secret"]))
            elif "serviceAccountToken" in source:
                token = source["serviceAccountToken"]
                files.append(
                    TokenFile(
                        path=str(token["path"]),
                        audience=token.get("audience"),
                        expiration_seconds=int(token.get("expirationSeconds") or 3600),
                    )
                )
        return tuple(files), True
    return (), False


def _env(entries: Sequence[Mapping[str, Any]]) -> tuple[EnvVar, ...]:
    out: list[EnvVar] = []
    for entry in entries:
        name = str(entry["name"])
        source = entry.get("valueFrom")
        if source is None:
            out.append(EnvVar(name, value=str(entry.get("value") or "")))
        elif "fieldRef" in source:
            out.append(EnvVar(name, field_path=str(source["fieldRef"]["fieldPath"])))
        elif "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            out.append(
                EnvVar(name, secret=(ref["name"], ref["key"]), optional=bool(ref.get("optional")))
            )
        elif "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            out.append(
                EnvVar(
                    name, config_map=(ref["name"], ref["key"]), optional=bool(ref.get("optional"))
                )
            )
        # resourceFieldRef: nothing on this machine limits the process; left unset.
    return tuple(out)


def _env_from(entries: Sequence[Mapping[str, Any]]) -> tuple[EnvFrom, ...]:
    out: list[EnvFrom] = []
    for entry in entries:
        prefix = str(entry.get("prefix") or "")
        if "secretRef" in entry:
            ref = entry["secretRef"]
            out.append(EnvFrom("secret", ref["name"], prefix, bool(ref.get("optional"))))
        elif "configMapRef" in entry:
            ref = entry["configMapRef"]
            out.append(EnvFrom("configMap", ref["name"], prefix, bool(ref.get("optional"))))
    return tuple(out)


def _port(container: Mapping[str, Any], ref: object) -> int:
    """A probe's port: a number, or the name of one of the container's ports."""
    if isinstance(ref, int):
        return ref
    for port in container.get("ports") or []:
        if port.get("name") == ref:
            return int(port["containerPort"])
    ports = container.get("ports") or [{"containerPort": 8080}]
    return int(ports[0]["containerPort"])


def _security(spec: Mapping[str, Any], container: Mapping[str, Any], key: str) -> int | None:
    """A securityContext field as the kubelet resolves it: the container's over the pod's."""
    for context in (container.get("securityContext"), spec.get("securityContext")):
        if context and context.get(key) is not None:
            return int(context[key])
    return None


def plan_pod(pod: Mapping[str, Any]) -> PodPlan | None:
    """The plan for an agent pod (a pod with an `agent` container); None for any other."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    labels = dict(meta.get("labels") or {})
    containers = [c for c in spec.get("containers") or [] if c.get("name") == AGENT_CONTAINER]
    if not containers or POOL_LABEL not in labels:
        return None
    container = containers[0]
    volumes = {v["name"]: v for v in spec.get("volumes") or []}
    mounts: list[Mount] = []
    for mount in container.get("volumeMounts") or []:
        volume = volumes.get(mount["name"], {})
        files, emulated = _volume_files(volume)
        read_only = bool(mount.get("readOnly", False))
        path, name = str(mount["mountPath"]), str(mount["name"])
        mounts.append(Mount(path, name, files, emulated, read_only))
    probe = (container.get("readinessProbe") or {}).get("httpGet") or {}
    container_port = _port(container, "http")
    pre_stop = (((container.get("lifecycle") or {}).get("preStop") or {}).get("exec") or {}).get(
        "command"
    )
    return PodPlan(
        namespace=str(meta.get("namespace") or "default"),
        name=str(meta["name"]),
        uid=str(meta.get("uid") or ""),
        pool=labels[POOL_LABEL],
        service_account=str(spec.get("serviceAccountName") or "default"),
        node_name=str(spec.get("nodeName") or ""),
        labels=labels,
        annotations=dict(meta.get("annotations") or {}),
        command=tuple(container.get("command") or ("agentpool-agent",)),
        image_entrypoint=not container.get("command"),
        args=tuple(str(a) for a in container.get("args") or ()),
        env=_env(container.get("env") or []),
        env_from=_env_from(container.get("envFrom") or []),
        mounts=tuple(mounts),
        container_port=container_port,
        readiness_path=str(probe.get("path") or "/readyz"),
        pre_stop=tuple(str(a) for a in pre_stop) if pre_stop else None,
        grace_seconds=int(spec.get("terminationGracePeriodSeconds") or DEFAULT_GRACE_SECONDS),
        run_as_user=_security(spec, container, "runAsUser"),
        run_as_group=_security(spec, container, "runAsGroup"),
    )


def field_value(plan: PodPlan, path: str, *, pod_ip: str) -> str:
    """A `fieldRef` as the downward API fills it (the pod's IP is the loopback here)."""
    simple = {
        "metadata.name": plan.name,
        "metadata.namespace": plan.namespace,
        "metadata.uid": plan.uid,
        "spec.nodeName": plan.node_name,
        "spec.serviceAccountName": plan.service_account,
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
        "status.hostIP": pod_ip,
    }
    if path in simple:
        return simple[path]
    for prefix, values in (
        ("metadata.labels", plan.labels),
        ("metadata.annotations", plan.annotations),
    ):
        if path.startswith(prefix + "['") and path.endswith("']"):
            return values.get(path[len(prefix) + 2 : -2], "")
    return ""
