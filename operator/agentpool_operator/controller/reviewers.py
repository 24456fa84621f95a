"""The token-reviewer ClusterRoleBinding: its subjects are kept equal to the ServiceAccounts
of the pools whose runtime checks projected tokens by TokenReview (`render/reviewers.py`).

Creating a TokenReview is cluster-scoped, so only a ClusterRoleBinding can allow it. The
chart creates one narrow ClusterRole (create tokenreviews, nothing else) and one binding
to it with no subjects; the operator may get and patch that binding by name and `bind`
that role by name (the API server refuses to let anyone grant a permission they neither
hold nor may bind), and nothing else of RBAC: it can neither make another binding nor
delete this one.

Off the reconcile path: pool and tool events mark the set stale and one task recomputes
it from the indexes, at most every `debounce` seconds. The binding is read by name once
at start and again at each resync (a hand edit is undone then); it is written, with one
server-side apply, only when the wanted subjects differ from the ones last seen.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import structlog

from agentpool_operator.controller.reconcile import ParseCache, PoolKey
from agentpool_operator.controller.view import Body
from agentpool_operator.kube import KubeApi, KubeError
from agentpool_operator.metrics import TOKEN_REVIEWERS
from agentpool_operator.render.reviewers import Subject, token_reviewers

log = structlog.get_logger(__name__)

RBAC_VERSION = "rbac.authorization.k8s.io/v1"


class PoolsView(Protocol):
    def pool_keys(self, namespace: str | None = None) -> list[PoolKey]: ...

    def pools(self, namespace: str) -> list[Body]: ...

    def tools(self, namespace: str) -> list[Body]: ...


Entry = tuple[str, str, str]
"""A subject of a binding: (kind, namespace, name)."""


def subjects_of(binding: Mapping[str, Any]) -> frozenset[Entry]:
    """Every subject a binding names, of any kind (one the operator did not put there is
    removed at the next write, and makes one)."""
    return frozenset(
        (str(s.get("kind", "")), str(s.get("namespace", "")), str(s.get("name", "")))
        for s in binding.get("subjects") or []
    )


def _entries(accounts: Iterable[Subject]) -> frozenset[Entry]:
    return frozenset(("ServiceAccount", namespace, name) for namespace, name in accounts)


def binding_body(name: str, role_ref: Mapping[str, Any], subjects: Iterable[Subject]) -> Body:
    """The applied configuration: the subjects, sorted (one order, so an unchanged set is
    an unchanged object), and the roleRef the binding already has (immutable, but the API
    server wants it in every apply)."""
    return {
        "apiVersion": RBAC_VERSION,
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": dict(role_ref),
        "subjects": [
            {"kind": "ServiceAccount", "name": account, "namespace": namespace}
            for namespace, account in sorted(subjects)
        ],
    }


class BindingMissingError(Exception):
    """The chart's binding does not exist (the operator may not create it)."""


class ReviewerBinding:
    """Keeps one ClusterRoleBinding's subjects equal to the pools' token reviewers."""

    def __init__(
        self,
        name: str,
        view: PoolsView,
        parsed: ParseCache,
        kube: KubeApi,
        *,
        debounce: float = 0.5,
        retry: float = 5.0,
    ) -> None:
        self.name = name
        self._view = view
        self._parsed = parsed
        self._kube = kube
        self._debounce = debounce
        self._retry = retry
        self._stale = asyncio.Event()
        self._ready = False
        self._reread = True
        self._role_ref: dict[str, Any] = {}
        self._known: frozenset[Entry] | None = None

    def indexes_ready(self) -> None:
        """Called from every event handler: kopf runs them only once every index holds its
        first listing, so from now on the indexes are the cluster and not a part of it."""
        if not self._ready:
            self._ready = True
            self._stale.set()

    def touch(self) -> None:
        """A pool or tool changed: the set may have."""
        self.indexes_ready()
        self._stale.set()

    def resync(self) -> None:
        """Read the binding again before the next comparison (undoes hand edits)."""
        self._reread = True
        if self._ready:
            self._stale.set()

    def wanted(self) -> frozenset[Subject]:
        found: set[Subject] = set()
        for namespace in sorted({ns for ns, _ in self._view.pool_keys()}):
            pools = self._parsed.pools(self._view.pools(namespace))
            tools = self._parsed.tools(self._view.tools(namespace))
            found |= token_reviewers(pools, tools)
        return frozenset(found)

    async def sync(self) -> bool:
        """One pass: read the binding if needed, write it if its subjects differ from the
        wanted ones. True when it wrote."""
        if self._reread or self._known is None:
            live = await self._kube.get_cluster_object(
                RBAC_VERSION, "ClusterRoleBinding", self.name
            )
            if live is None:
                raise BindingMissingError(
                    f"ClusterRoleBinding {self.name!r} does not exist (the chart creates it)"
                )
            self._role_ref = dict(live["roleRef"])
            self._known = subjects_of(live)
            self._reread = False
        wanted = self.wanted()
        TOKEN_REVIEWERS.set(len(wanted))
        entries = _entries(wanted)
        if entries == self._known:
            return False
        added, removed = sorted(entries - self._known), sorted(self._known - entries)
        await self._kube.apply_cluster_object(binding_body(self.name, self._role_ref, wanted))
        self._known = entries
        log.info(
            "token reviewers updated",
            binding=self.name,
            added=["/".join(e) for e in added],
            removed=["/".join(e) for e in removed],
        )
        return True

    async def run(self) -> None:
        """For ever: wait until something changed, let a burst of changes settle, sync."""
        while True:
            await self._stale.wait()
            await asyncio.sleep(self._debounce)  # coalesce a burst of events into one pass
            self._stale.clear()
            try:
                await self.sync()
            except (KubeError, BindingMissingError) as exc:
                # Pool-as-tool calls are refused (503) until this succeeds: say so loudly.
                log.error(
                    "token-reviewer binding not updated; pools cannot review tokens",
                    binding=self.name,
                    error=str(exc),
                    retry_in=self._retry,
                )
                self._reread = True
                await asyncio.sleep(self._retry)
                self._stale.set()
