"""What a pool references in its namespace (Secrets, ConfigMaps, AgentTools), whether each
exists, and the config hash that rolls the pods when one of them changes.

The hash covers the rendered runtime config (a function of the pool's spec and its
resolved tools' specs, never of anything discovered live: kagent #2466 rolled every pod
hourly by hashing live MCP discovery) and the resource versions of the Secrets and
ConfigMaps it references, so rotating an API key rolls the pods too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from agent_runtime.config import RuntimeConfig, dump_runtime_config
from agentpool_operator import api
from agentpool_operator.render.config import Problem, RenderedConfig

HASH_LENGTH = 20


@dataclass(frozen=True)
class ObjectVersion:
    """What the operator knows of a Secret or ConfigMap: its version and its keys."""

    resource_version: str
    keys: frozenset[str]


@dataclass(frozen=True)
class KeyReference:
    """A key of a Secret or ConfigMap in the pool's namespace."""

    kind: str  # "Secret" or "ConfigMap"
    name: str
    key: str | None  # None: the whole object (envFrom)


def references(pool: api.AgentPool, rendered: RenderedConfig) -> tuple[KeyReference, ...]:
    """Every Secret and ConfigMap key the pool's pods need, sorted, without repeats."""
    found: set[KeyReference] = set()
    for env in rendered.secret_env:
        found.add(KeyReference("Secret", env.secret.name, env.secret.key))
    for file in rendered.files:
        if file.secret is not None:
            found.add(KeyReference("Secret", file.secret.name, file.secret.key))
        if file.config_map is not None:
            found.add(KeyReference("ConfigMap", file.config_map.name, file.config_map.key))
    template = pool.spec.pod_template
    for var in template.env:
        source = var.value_from
        if source is not None and source.secret_key_ref is not None:
            found.add(KeyReference("Secret", source.secret_key_ref.name, source.secret_key_ref.key))
        if source is not None and source.config_map_key_ref is not None:
            ref = source.config_map_key_ref
            found.add(KeyReference("ConfigMap", ref.name, ref.key))
    for env_from in template.env_from:
        if env_from.secret_ref is not None:
            found.add(KeyReference("Secret", env_from.secret_ref.name, None))
        if env_from.config_map_ref is not None:
            found.add(KeyReference("ConfigMap", env_from.config_map_ref.name, None))
    return tuple(sorted(found, key=lambda r: (r.kind, r.name, r.key or "")))


def missing_references(
    refs: Iterable[KeyReference], known: Mapping[tuple[str, str], ObjectVersion]
) -> tuple[Problem, ...]:
    """A Problem for each referenced object or key that does not exist."""
    problems: list[Problem] = []
    for ref in refs:
        found = known.get((ref.kind, ref.name))
        if found is None:
            problems.append(Problem(f"{ref.kind}NotFound", f"{ref.kind} {ref.name!r} not found"))
        elif ref.key is not None and ref.key not in found.keys:
            problems.append(
                Problem(
                    f"{ref.kind}KeyNotFound",
                    f"{ref.kind} {ref.name!r} has no key {ref.key!r}",
                )
            )
    return tuple(problems)


def config_hash(
    config: RuntimeConfig,
    refs: Sequence[KeyReference],
    known: Mapping[tuple[str, str], ObjectVersion],
) -> str:
    """The hash in the pod template: a change of the config or of a referenced object
    rolls the pods; nothing else does."""
    versions = [
        [ref.kind, ref.name, known[(ref.kind, ref.name)].resource_version]
        for ref in refs
        if (ref.kind, ref.name) in known
    ]
    digest = hashlib.sha256()
    digest.update(dump_runtime_config(config).encode())
    digest.update(json.dumps(versions, separators=(",", ":")).encode())
    return digest.hexdigest()[:HASH_LENGTH]
