"""What the reconcile reads: the cluster as the operator's watch streams last saw it.

`ClusterView` is the interface; `handlers.py` implements it over kopf indexes, the unit
tests over dictionaries. Bodies are plain dicts as the API server serves them, without
managedFields.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from agentpool_operator.render.references import ObjectVersion

Body = dict[str, Any]


class ClusterView(Protocol):
    def pool(self, namespace: str, name: str) -> Body | None:
        """The AgentPool, or None when it is gone."""

    def pools(self, namespace: str) -> list[Body]:
        """Every AgentPool of a namespace."""

    def tools(self, namespace: str) -> list[Body]:
        """Every AgentTool of a namespace."""

    def objects(self, namespace: str) -> Mapping[tuple[str, str], ObjectVersion]:
        """Secrets and ConfigMaps of a namespace by (kind, name)."""

    def children(self, namespace: str, pool: str) -> Mapping[str, Body]:
        """The pool's children by kind."""
