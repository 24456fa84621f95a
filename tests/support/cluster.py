"""The Kubernetes cluster the integration tests run against.

By default the local control plane (hack/cluster.sh, kwokctl with real binaries) is
started once per session; with AGENTPOOL_TEST_KUBECONFIG set, that cluster is used as it
is (this is how the same suite runs against kind).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.support.redis_server import REPO_ROOT

# Several checkouts on one machine (worktrees) each set their own name.
TEST_CLUSTER = os.environ.get("AGENTPOOL_TEST_CLUSTER", "agentpool-test")


@dataclass(frozen=True)
class Cluster:
    kubeconfig: Path
    bin_dir: Path | None
    started_here: bool
    name: str = TEST_CLUSTER

    def tool(self, name: str) -> str:
        """Path of a control-plane tool (kubectl, helm): the built one when we have it."""
        if self.bin_dir is not None and (self.bin_dir / name).exists():
            return str(self.bin_dir / name)
        return name

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        out = subprocess.run(
            [self.tool("kubectl"), "--kubeconfig", str(self.kubeconfig), *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if check and out.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({out.returncode}):\n{out.stderr}"
            )
        return out

    def helm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        out = subprocess.run(
            [self.tool("helm"), "--kubeconfig", str(self.kubeconfig), *args],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if check and out.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed ({out.returncode}):\n{out.stderr}")
        return out


def _hack(*args: str, env: dict[str, str] | None = None) -> str:
    out = subprocess.run(
        [str(REPO_ROOT / "hack" / args[0]), *args[1:]],
        capture_output=True,
        text=True,
        check=False,
        timeout=3600,  # a first run compiles the control plane
        env=None if env is None else {**os.environ, **env},
    )
    if out.returncode != 0:
        raise RuntimeError(
            f"hack/{' '.join(args)} failed (exit {out.returncode}); the integration tests "
            f"cannot run without it:\n{out.stderr[-4000:]}"
        )
    lines = out.stdout.strip().splitlines()
    return lines[-1] if lines else ""


def built_bin_dir() -> Path:
    return Path(_hack("build-binaries.sh"))


def acquire_cluster() -> Cluster:
    external = os.environ.get("AGENTPOOL_TEST_KUBECONFIG")
    if external:
        return Cluster(kubeconfig=Path(external), bin_dir=None, started_here=False)
    return acquire_local_cluster(TEST_CLUSTER)


def acquire_local_cluster(name: str, extra_args: Sequence[str] = ()) -> Cluster:
    """The local control plane `name`, started with `extra_args` (kwokctl --extra-args
    values, `component=flag=value`) unless it already runs."""
    status = subprocess.run(
        [str(REPO_ROOT / "hack" / "cluster.sh"), "status", name],
        capture_output=True,
        text=True,
        check=False,
    )
    already_running = status.returncode == 0
    env = {"AGENTPOOL_CLUSTER_EXTRA_ARGS": " ".join(extra_args)} if extra_args else None
    kubeconfig = Path(_hack("cluster.sh", "up", name, env=env))
    return Cluster(
        kubeconfig=kubeconfig,
        bin_dir=built_bin_dir(),
        started_here=not already_running,
        name=name,
    )


def cluster_dir(name: str) -> Path:
    """Where kwokctl keeps cluster `name` (its pki/, logs/), as hack/cluster.sh sets it."""
    cache = os.environ.get("AGENTPOOL_CACHE") or str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "agentpool"
    )
    return Path(cache) / "kwok" / "clusters" / name


def release_cluster(cluster: Cluster) -> None:
    # A cluster someone else started (a developer's, or kind) is left alone.
    if cluster.started_here and not os.environ.get("AGENTPOOL_TEST_KEEP_CLUSTER"):
        _hack("cluster.sh", "down", cluster.name)
