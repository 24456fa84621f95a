"""What the runner reports: its pools, their front URLs and the processes behind them.

The same models serve the in-process API (`PodRunner.status()`), the runner's status
endpoint (`GET /status`) and the status file, so a test reads one shape either way.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


class PodProcess(_Model):
    """One pod's process."""

    pod: str
    uid: str
    port: int
    url: str
    pid: int | None
    state: str
    """starting, ready, unready, crash-loop (exited, restarted with a back-off),
    draining, failed (could not be started: see `error`)."""
    ready: bool
    draining: bool
    inflight: int
    """Requests the front has in flight on it."""
    served: int
    """Requests the front has sent it."""
    restarts: int
    last_exit: int | None = None
    """The exit status of its last run, once it has exited."""
    seen_running_at: float
    """Wall clock when the runner saw the pod Running."""
    ready_at: float | None
    """Wall clock when its /readyz first answered."""
    log: str
    error: str | None = None


class PoolFrontStatus(_Model):
    """One pool's front and its processes (draining ones included until they exit)."""

    namespace: str
    pool: str
    url: str
    waiting: int
    """Requests waiting for a ready process."""
    activator: str | None = None
    """The activator's local URL while the pool's Service routes to it."""
    to_activator: int = 0
    """Requests the front sent to the activator."""
    pods: list[PodProcess]

    @property
    def serving(self) -> list[PodProcess]:
        return [p for p in self.pods if p.ready and not p.draining]


class RunnerStatus(_Model):
    pools: list[PoolFrontStatus]
    image: str | None = None
    """Image mode: the image each pod's container runs (else None: processes)."""
    container: str | None = None
    """Image mode: the runner's working container of that image."""

    def pool(self, namespace: str, pool: str) -> PoolFrontStatus | None:
        for found in self.pools:
            if (found.namespace, found.pool) == (namespace, pool):
                return found
        return None
