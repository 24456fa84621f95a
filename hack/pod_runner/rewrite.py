"""From the container's view to this machine's (pure): paths, ports and Service names.

A pod's config and arguments name container paths (`/etc/agentpool/config.json`, the
mounted Secrets, the projected tokens), its own port, and cluster DNS names (another
pool's Service, a Redis Service, `kubernetes.default.svc`). Nothing of that exists on the
host, so the runner rewrites them, and only them:

- a string that is a mount path or lies under one gets the pod's host root in front
  (each pod's volumes are written under its own directory);
- an argument `--port=N` naming the container port gets the port the process listens on;
- a URL whose host:port the resolver knows (a pool's front, the API server, an alias the
  user gave) points there; an agent tool that names another pool gets that pool's URL.

The runtime itself is not told it runs outside a pod: no check is loosened for this.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit, urlunsplit

Resolver = Callable[[str, int], str | None]
"""(host, port) in the cluster -> "host:port" on this machine, or None: left as it is."""

DEFAULT_PORTS = {"http": 80, "https": 443, "redis": 6379, "rediss": 6379}


@dataclass(frozen=True)
class HostLayout:
    """Where a pod's container paths live on the host: `root` + the container path."""

    root: str
    mount_paths: tuple[str, ...]

    def host_path(self, container_path: str) -> str | None:
        """The host path of a container path under one of the mounts, else None."""
        for mount in sorted(self.mount_paths, key=len, reverse=True):
            clean = mount.rstrip("/") or "/"
            if container_path == clean or container_path.startswith(clean + "/"):
                return str(PurePosixPath(self.root) / container_path.lstrip("/"))
        return None


def rewrite_url(url: str, resolve: Resolver) -> str:
    """`url` with its host:port replaced when the resolver knows them."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return url
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        return url
    target = resolve(parts.hostname, port or DEFAULT_PORTS[parts.scheme])
    if target is None:
        return url
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@{target}" if userinfo else target
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def rewrite_string(value: str, layout: HostLayout, resolve: Resolver) -> str:
    """One string of a config or environment: a container path, a URL, or left as it is."""
    if value.startswith("/"):
        return layout.host_path(value) or value
    if "://" in value:
        return rewrite_url(value, resolve)
    return value


def _agent_tool(agent: dict[str, Any], namespace: str, resolve: Resolver) -> None:
    """An agent tool naming a pool calls `http://POOL.NS.svc:PORT`: name the URL instead."""
    pool = agent.get("pool")
    if not isinstance(pool, str) or agent.get("url"):
        return
    ns = agent.get("namespace") or namespace
    port = int(agent.get("port") or 8080)
    target = resolve(f"{pool}.{ns}.svc", port)
    if target is not None:
        agent.update({"url": f"http://{target}", "pool": None, "namespace": None})


def rewrite_config(document: Any, layout: HostLayout, resolve: Resolver, namespace: str) -> Any:
    """A copy of the runtime config document with paths and cluster names rewritten."""

    def walk(node: Any, key: str | None) -> Any:
        if isinstance(node, str):
            return rewrite_string(node, layout, resolve)
        if isinstance(node, list):
            return [walk(item, key) for item in node]
        if isinstance(node, dict):
            out = {k: walk(v, k) for k, v in node.items()}
            if key == "agent":
                _agent_tool(out, namespace, resolve)
            return out
        return node

    return walk(document, None)


def rewrite_argv(
    argv: Sequence[str],
    layout: HostLayout,
    *,
    container_port: int,
    host_port: int,
) -> list[str]:
    """Arguments with container paths mapped and `--port` moved to the host port."""
    out: list[str] = []
    previous = ""
    for arg in argv:
        if arg == f"--port={container_port}":
            arg = f"--port={host_port}"
        elif previous == "--port" and arg == str(container_port):
            arg = str(host_port)
        elif "=" in arg and arg.startswith("--"):
            flag, value = arg.split("=", 1)
            arg = f"{flag}={layout.host_path(value) or value}"
        elif arg.startswith("/"):
            arg = layout.host_path(arg) or arg
        out.append(arg)
        previous = arg
    return out
