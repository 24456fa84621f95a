"""Which pool a request is for, from its Host header (pure).

A client reaches the activator through the pool's Service, so its Host names the
Service: `POOL.NS`, `POOL.NS.svc` or `POOL.NS.svc.<cluster domain>`, with or without a
port. A bare `POOL` (a client in the pool's own namespace) names no namespace, and the
activator serves every namespace: it is refused rather than guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_PORT = re.compile(r"^[0-9]{1,5}$")


class HostError(ValueError):
    """The Host header names no pool (the message says why)."""


@dataclass(frozen=True)
class PoolAddress:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


def pool_from_host(host: str | None) -> PoolAddress:
    """The pool a Host header names; HostError when it names none."""
    if not host:
        raise HostError("the request has no Host header: it must name the pool's Service")
    name = host.strip().lower()
    if name.startswith("["):
        raise HostError(f"Host {host!r} is an address, not a pool's Service name")
    if ":" in name:
        name, _, port = name.rpartition(":")
        if not _PORT.match(port):
            raise HostError(f"Host {host!r} has an invalid port")
    name = name.removesuffix(".")
    labels = name.split(".")
    if len(labels) >= 3 and labels[2] != "svc":
        raise HostError(
            f"Host {host!r} is not a Service name (POOL.NAMESPACE[.svc[.CLUSTER-DOMAIN]])"
        )
    if len(labels) < 2:
        raise HostError(
            f"Host {host!r} names no namespace: send POOL.NAMESPACE or "
            "POOL.NAMESPACE.svc as the Host"
        )
    if all(label.isdigit() for label in labels):
        raise HostError(f"Host {host!r} is an address, not a pool's Service name")
    if not all(_LABEL.match(label) for label in labels):
        raise HostError(f"Host {host!r} is not a valid DNS name")
    return PoolAddress(namespace=labels[1], name=labels[0])
