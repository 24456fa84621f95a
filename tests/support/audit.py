"""The API server's audit log, read back: who wrote what, when.

The local control plane logs every write request at Metadata level
(hack/audit-policy.yaml; hack/cluster.sh starts kube-apiserver with it). A test proves
the operator's write silence by counting the requests its own identity made in a window:

    window = AuditWindow.starting_now(audit_log_path(), user=OPERATOR_USER)
    ...  # idle
    counts = window.writes()
    assert counts.total_excluding_leases == 0, counts.by_request

Lease writes (leader election renewals) are counted apart, in `lease_writes`.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes import client

from tests.support.cluster import TEST_CLUSTER
from tests.support.redis_server import REPO_ROOT
from tests.support.wait import wait_until

WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


@dataclass(frozen=True)
class AuditEvent:
    """One audited request (stage ResponseComplete, or Panic)."""

    at: datetime
    """When the API server received the request (UTC)."""
    user: str
    verb: str
    resource: str
    """`group/resource[/subresource]`, the group left out for the core API: `configmaps`,
    `apps/deployments`, `agentpool.dev/agentpools/status`."""
    namespace: str
    name: str
    code: int
    """The HTTP status of the response (0 if it has none)."""
    impersonated_user: str = ""
    authorized: bool = True
    """False when the authorizer (RBAC) refused the request. A 403 can come from
    elsewhere too: admission refuses new objects in a namespace being deleted
    (`NamespaceTerminating`) after RBAC allowed the request."""

    @property
    def is_lease(self) -> bool:
        return self.resource == "coordination.k8s.io/leases"

    @property
    def refused_by_rbac(self) -> bool:
        return self.code == 403 and not self.authorized


@dataclass(frozen=True)
class WriteCounts:
    by_request: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(verb, resource) -> count, leases excluded."""
    lease_writes: int = 0

    @property
    def total_excluding_leases(self) -> int:
        return sum(self.by_request.values())


def audit_log_path(cluster_name: str = TEST_CLUSTER) -> Path:
    """The audit log of a cluster started by hack/cluster.sh (fails if it has none)."""
    out = subprocess.run(
        [str(REPO_ROOT / "hack" / "cluster.sh"), "audit-log", cluster_name],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip())
    return Path(out.stdout.strip().splitlines()[-1])


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def _event(raw: dict[str, Any]) -> AuditEvent | None:
    ref = raw.get("objectRef") or {}
    if not ref.get("resource"):
        return None  # a non-resource URL such as /healthz
    parts = [ref.get("apiGroup", ""), ref["resource"], ref.get("subresource", "")]
    return AuditEvent(
        at=_parse_time(raw["requestReceivedTimestamp"]),
        user=raw.get("user", {}).get("username", ""),
        verb=raw.get("verb", ""),
        resource="/".join(p for p in parts if p),
        namespace=ref.get("namespace", ""),
        name=ref.get("name", ""),
        code=int((raw.get("responseStatus") or {}).get("code", 0)),
        impersonated_user=(raw.get("impersonatedUser") or {}).get("username", ""),
        authorized=(raw.get("annotations") or {}).get("authorization.k8s.io/decision") != "forbid",
    )


def read_events(
    path: Path,
    *,
    user: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[AuditEvent]:
    """The audited resource requests in the log, filtered by user and received time."""
    return list(_filter(_read(path), user=user, since=since, until=until))


def _read(path: Path) -> Iterator[AuditEvent]:
    with path.open() as lines:
        for line in lines:
            line = line.strip()
            if not line:
                continue
            try:
                raw = json.loads(line)
            except json.JSONDecodeError:
                continue  # the last line, while the API server is writing it
            if raw.get("stage") not in ("ResponseComplete", "Panic"):
                continue
            event = _event(raw)
            if event is not None:
                yield event


def _filter(
    events: Iterable[AuditEvent],
    *,
    user: str | None,
    since: datetime | None,
    until: datetime | None,
) -> Iterator[AuditEvent]:
    for event in events:
        if user is not None and user not in (event.user, event.impersonated_user):
            continue
        if since is not None and event.at < since:
            continue
        if until is not None and event.at >= until:
            continue
        yield event


def count_writes(events: Iterable[AuditEvent]) -> WriteCounts:
    """Write requests by (verb, resource), Lease writes apart. Refused ones count too."""
    by_request: Counter[tuple[str, str]] = Counter()
    leases = 0
    for event in events:
        if event.verb not in WRITE_VERBS:
            continue
        if event.is_lease:
            leases += 1
        else:
            by_request[(event.verb, event.resource)] += 1
    return WriteCounts(by_request=by_request, lease_writes=leases)


@dataclass
class AuditWindow:
    """The writes one user makes from `since` until `close()` (or until now)."""

    path: Path
    user: str
    since: datetime
    until: datetime | None = None

    @classmethod
    def starting_now(cls, path: Path, *, user: str) -> AuditWindow:
        return cls(path=path, user=user, since=datetime.now(UTC))

    def close(self) -> None:
        self.until = datetime.now(UTC)

    def events(self) -> list[AuditEvent]:
        return read_events(self.path, user=self.user, since=self.since, until=self.until)

    def writes(self) -> WriteCounts:
        return count_writes(self.events())

    def wait_for(self, verb: str, resource: str, *, timeout: float = 10.0) -> AuditEvent:
        """Wait until a `verb` on `resource` by this user shows up (the log is flushed
        asynchronously, so a request just made may take a moment to appear)."""

        def found() -> AuditEvent | None:
            return next(
                (e for e in self.events() if e.verb == verb and e.resource == resource), None
            )

        return wait_until(found, timeout=timeout, what=f"{verb} {resource} in the audit log")


def flush(path: Path, api: client.ApiClient, *, timeout: float = 10.0) -> None:
    """Return once every request received so far is in the log.

    Makes a marker request (a server-side dry-run create, which changes nothing but is
    audited) and waits for it to appear: the log is written in order, so whatever came
    before it is there too.
    """
    marker = f"audit-flush-{uuid.uuid4().hex[:12]}"
    client.CoreV1Api(api).create_namespaced_config_map(
        "default",
        client.V1ConfigMap(metadata=client.V1ObjectMeta(name=marker)),
        dry_run="All",
    )
    wait_until(
        lambda: any(e.name == marker for e in _read(path)),
        timeout=timeout,
        what=f"the audit marker {marker}",
    )
