"""The kubelet's volume and environment work for one pod: read the Secrets, ConfigMaps
and projected tokens the pod names from the API server and write them under the pod's
host root (files 0600 in 0700 directories); resolve its environment the same way.

Blocking calls (the kubernetes client is synchronous): callers run them in a thread.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from kubernetes import client

from hack.pod_runner.plan import EnvFrom, KeyFile, PodPlan, TokenFile, field_value

log = structlog.get_logger(__name__)

POD_IP = "127.0.0.1"


class MissingSourceError(RuntimeError):
    """A Secret or ConfigMap (key) the pod needs does not exist: the kubelet would not
    start the container either (CreateContainerConfigError)."""


@dataclass
class ClusterSources:
    """Reads what a pod's volumes and environment name, as the kubelet would."""

    api: client.ApiClient

    def data(self, kind: str, namespace: str, name: str, optional: bool) -> dict[str, bytes]:
        core = client.CoreV1Api(self.api)
        try:
            if kind == "secret":
                secret = core.read_namespaced_secret(name, namespace)
                return {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}
            found = core.read_namespaced_config_map(name, namespace)
            data = {k: v.encode() for k, v in (found.data or {}).items()}
            data.update({k: base64.b64decode(v) for k, v in (found.binary_data or {}).items()})
            return data
        except client.ApiException as exc:
            if exc.status == 404 and optional:
                return {}
            if exc.status == 404:
                raise MissingSourceError(f"{kind} {namespace}/{name} not found") from exc
            raise

    def key(self, kind: str, namespace: str, name: str, key: str, optional: bool) -> bytes | None:
        data = self.data(kind, namespace, name, optional)
        if key not in data and not optional:
            raise MissingSourceError(f"{kind} {namespace}/{name} has no key {key!r}")
        return data.get(key)

    def token(self, plan: PodPlan, file: TokenFile) -> str:
        """A token bound to the pod, as the kubelet requests it for a projected volume."""
        core = client.CoreV1Api(self.api)
        request = client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(
                audiences=[file.audience] if file.audience else [],
                expiration_seconds=file.expiration_seconds,
                bound_object_ref=client.V1BoundObjectReference(
                    kind="Pod", api_version="v1", name=plan.name, uid=plan.uid
                ),
            )
        )
        answer: Any = core.create_namespaced_service_account_token(
            plan.service_account, plan.namespace, request
        )
        return str(answer.status.token)


def _write(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(content)
    tmp.replace(path)


def write_volumes(plan: PodPlan, root: Path, sources: ClusterSources) -> None:
    """Every mount of the agent container under `root` (+ its container path)."""
    for mount in plan.mounts:
        where = root / mount.container_path.lstrip("/")
        where.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not mount.emulated:
            log.warning("volume kind not emulated: an empty directory", volume=mount.volume)
        for file in mount.files:
            if isinstance(file, TokenFile):
                try:
                    _write(where / file.path, sources.token(plan, file).encode())
                except client.ApiException as exc:
                    # A token the API server will not issue leaves the file out; the call
                    # that needs it fails as it would with a broken projection.
                    log.warning("token request refused", path=file.path, status=exc.status)
                continue
            _write_key_file(plan, where, file, sources)


def _write_key_file(plan: PodPlan, where: Path, file: KeyFile, sources: ClusterSources) -> None:
    if file.key is None:
        data = sources.data(file.kind, plan.namespace, file.name, file.optional)
        for key, content in data.items():
            _write(where / key, content)
        return
    value = sources.key(file.kind, plan.namespace, file.name, file.key, file.optional)
    if value is not None:
        _write(where / file.path, value)


def _env_from(plan: PodPlan, entry: EnvFrom, sources: ClusterSources) -> dict[str, str]:
    data = sources.data(entry.kind, plan.namespace, entry.name, entry.optional)
    return {entry.prefix + k: v.decode(errors="replace") for k, v in data.items()}


def pod_environment(plan: PodPlan, sources: ClusterSources) -> dict[str, str]:
    """The container's environment from the pod spec (envFrom first, then env)."""
    env: dict[str, str] = {}
    for entry in plan.env_from:
        env.update(_env_from(plan, entry, sources))
    for var in plan.env:
        if var.value is not None:
            env[var.name] = var.value
        elif var.field_path is not None:
            env[var.name] = field_value(plan, var.field_path, pod_ip=POD_IP)
        else:
            kind, ref = ("secret", var.secret) if var.secret else ("configMap", var.config_map)
            assert ref is not None
            value = sources.key(kind, plan.namespace, ref[0], ref[1], var.optional)
            if value is not None:
                env[var.name] = value.decode(errors="replace")
    return env
