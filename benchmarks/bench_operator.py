"""The operator at scale: time from applying N AgentPools to all of them Ready.

Needs an operator already running against the cluster (the lead's way: `agentpool-operator`
out of cluster with a kubeconfig); this harness only writes pools and watches statuses.

    AGENTPOOL_BENCH_KUBECONFIG=<kubeconfig> AGENTPOOL_BENCH_OPERATOR_PID=<pid> \\
        .venv/bin/python -m benchmarks operator
    .venv/bin/python -m benchmarks.bench_operator --operator <pid> --sizes 1,100,500 \\
        [--metrics-url http://127.0.0.1:9090/metrics] [--deadline 300] [--repeat 3]

(flags on the second form; `python -m benchmarks` reads the same settings from the
environment: AGENTPOOL_BENCH_SIZES, _OPERATOR_PID, _METRICS_URL, _DEADLINE).

For each size N it creates a fresh namespace, creates N pools as fast as the API server
takes them (a thread pool of writers), then polls one LIST of the namespace's pools until
every pool has condition Ready=True or the deadline passes. Reported per N:

- apply: seconds to create the N pools; the baseline, measured in the same run, is the
  same N creates of ConfigMaps of the same size (the API server's floor, no CRD
  validation, no operator), so `apply / baseline` is the cost of the CRD's schema + CEL;
- ready: seconds from the first create to the last pool Ready (the figure the issue asks
  for: goal 500 pools in under 60 s on the 2-core machine), and `ready / apply`;
- the operator's RSS after the size (goal under 200 MB at 500) and its CPU seconds over
  the size, per 100 pools (and per 100 reconciles when `--metrics-url` is given and the
  operator exports `agentpool_operator_reconciles_total`).

Without a kubeconfig it starts the local cluster `agentpool-bench` (hack/cluster.sh) and
installs the CRDs; without an operator PID it still runs but cannot report RSS or CPU,
and without an operator at all nothing becomes Ready: `python -m benchmarks` runs this
module only when AGENTPOOL_BENCH_OPERATOR is set (any value), or when named.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client, config

REPO_ROOT = Path(__file__).resolve().parents[1]
GROUP, VERSION, PLURAL = "agentpool.dev", "v1alpha1", "agentpools"
BENCH_CLUSTER = "agentpool-bench"
WRITERS = 16
POLL_SECONDS = 0.25


def pool_manifest(name: str) -> dict[str, Any]:
    """A small valid pool: one replica, no tools, its own Redis URL (nothing dials it)."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "AgentPool",
        "metadata": {"name": name, "labels": {"agentpool.dev/bench": "true"}},
        "spec": {
            "instructions": "You answer benchmark questions.",
            "model": {"baseUrl": "http://llm.invalid/v1", "name": "bench-model"},
            "memory": {"redis": {"url": "redis://bench-redis.invalid:6379/0"}},
            "scaling": {"mode": "None"},
            "replicas": 1,
        },
    }


def configmap_manifest(name: str) -> client.V1ConfigMap:
    """The baseline object: a ConfigMap carrying the pool's spec as text (same size)."""
    spec = str(pool_manifest(name)["spec"])
    return client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name), data={"spec": spec})


# --------------------------------------------------------------------------- processes


@dataclass(frozen=True)
class ProcessSample:
    rss_bytes: int
    cpu_seconds: float


def sample_process(pid: int) -> ProcessSample:
    """RSS and CPU seconds (user + system, children excluded) of a PID, from /proc."""
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
    rss = int(match.group(1)) * 1024 if match else 0
    # Fields after the command name (which may hold spaces, so split after the last ')').
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    utime, stime = int(fields[11]), int(fields[12])
    return ProcessSample(rss_bytes=rss, cpu_seconds=(utime + stime) / ticks)


def scrape_counter(url: str, name: str) -> float | None:
    """The sum over labels of a Prometheus counter on a /metrics page (None if absent)."""
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    values = [
        float(m.group(1))
        for m in re.finditer(rf"^{re.escape(name)}(?:\{{[^}}]*\}})? ([0-9.eE+-]+)$", text, re.M)
    ]
    return sum(values) if values else None


# --------------------------------------------------------------------------- cluster I/O


def kubeconfig_path() -> Path:
    given = os.environ.get("AGENTPOOL_BENCH_KUBECONFIG")
    if given:
        return Path(given)
    out = subprocess.run(
        [str(REPO_ROOT / "hack" / "cluster.sh"), "up", BENCH_CLUSTER],
        capture_output=True,
        text=True,
        check=True,
        timeout=3600,
    )
    path = Path(out.stdout.strip().splitlines()[-1])
    bin_dir = subprocess.run(
        [str(REPO_ROOT / "hack" / "build-binaries.sh")],
        capture_output=True, text=True, check=True, timeout=3600,
    ).stdout.strip().splitlines()[-1]  # fmt: skip
    subprocess.run(
        [
            f"{bin_dir}/kubectl", "--kubeconfig", str(path), "apply", "--server-side",
            "--force-conflicts", "--field-manager=agentpool-bench", "-f",
            str(REPO_ROOT / "crds"),
        ],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return path


def parallel(calls: Iterable[Callable[[], object]]) -> float:
    """Run the calls on WRITERS threads; seconds until all returned (errors propagate)."""
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=WRITERS) as pool:
        for future in [pool.submit(call) for call in calls]:
            future.result()
    return time.perf_counter() - start


def ready_count(custom: client.CustomObjectsApi, namespace: str) -> int:
    listed = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
    ready = 0
    for item in listed["items"]:
        conditions = (item.get("status") or {}).get("conditions") or []
        if any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
            ready += 1
    return ready


def wait_namespace_gone(core: client.CoreV1Api, name: str, deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            core.read_namespace(name)
        except client.ApiException as exc:
            if exc.status == 404:
                return
            raise
        time.sleep(POLL_SECONDS)
    print(f"  (namespace {name} still terminating after {deadline_s:.0f}s; going on)")


# --------------------------------------------------------------------------- one size


@dataclass(frozen=True)
class SizeResult:
    size: int
    apply_s: float
    baseline_s: float
    ready_s: float | None
    half_ready_s: float | None
    ready: int
    deployments: int
    """Deployments in the pools' namespace when the wait ended (the operator's share)."""
    pods_running: int
    """Pods Running then (kube-controller-manager's, the scheduler's and kwok's share)."""
    rss_mb: float | None
    cpu_s: float | None
    reconciles: float | None


def run_size(
    api: client.ApiClient,
    size: int,
    *,
    deadline_s: float,
    operator_pid: int | None,
    metrics_url: str | None,
) -> SizeResult:
    core = client.CoreV1Api(api)
    custom = client.CustomObjectsApi(api)
    run = uuid.uuid4().hex[:6]
    baseline_ns, pools_ns = f"bench-base-{run}", f"bench-pools-{run}"
    for ns in (baseline_ns, pools_ns):
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    names = [f"pool-{i:04d}" for i in range(size)]
    try:
        baseline_s = parallel(
            (lambda n=n: core.create_namespaced_config_map(baseline_ns, configmap_manifest(n)))
            for n in names
        )
        before = sample_process(operator_pid) if operator_pid else None
        reconciles_before = scrape_reconciles(metrics_url)
        start = time.perf_counter()
        apply_s = parallel(
            (
                lambda n=n: custom.create_namespaced_custom_object(
                    GROUP, VERSION, pools_ns, PLURAL, pool_manifest(n)
                )
            )
            for n in names
        )
        ready, ready_s, half_ready_s = 0, None, None
        deadline = start + deadline_s
        while time.perf_counter() < deadline:
            ready = ready_count(custom, pools_ns)
            if half_ready_s is None and ready * 2 >= size:
                half_ready_s = time.perf_counter() - start
            if ready == size:
                ready_s = time.perf_counter() - start
                break
            time.sleep(POLL_SECONDS)
        deployments = len(client.AppsV1Api(api).list_namespaced_deployment(pools_ns).items)
        pods_running = len(
            core.list_namespaced_pod(pools_ns, field_selector="status.phase=Running").items
        )
        after = sample_process(operator_pid) if operator_pid else None
        reconciles_after = scrape_reconciles(metrics_url)
        return SizeResult(
            size=size,
            apply_s=apply_s,
            baseline_s=baseline_s,
            ready_s=ready_s,
            half_ready_s=half_ready_s,
            ready=ready,
            deployments=deployments,
            pods_running=pods_running,
            rss_mb=after.rss_bytes / 2**20 if after else None,
            cpu_s=after.cpu_seconds - before.cpu_seconds if after and before else None,
            reconciles=(
                reconciles_after - reconciles_before
                if reconciles_after is not None and reconciles_before is not None
                else None
            ),
        )
    finally:
        for ns in (baseline_ns, pools_ns):
            core.delete_namespace(ns, propagation_policy="Background")
        for ns in (baseline_ns, pools_ns):
            wait_namespace_gone(core, ns, deadline_s=max(60.0, size * 0.5))


def scrape_reconciles(url: str | None) -> float | None:
    if not url:
        return None
    try:
        return scrape_counter(url, "agentpool_operator_reconciles_total")
    except OSError:
        return None


# --------------------------------------------------------------------------- report


def _fmt(value: float | None, unit: str = "", digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}{unit}"


def report(results: list[SizeResult]) -> None:
    print(
        "| pools | apply | baseline (ConfigMaps) | apply/baseline | half Ready | all Ready "
        "| Ready/apply | ready | deployments | pods Running | operator RSS | CPU s "
        "| CPU s / 100 pools | CPU s / 100 reconciles |"
    )
    print("| --- " * 14 + "|")
    for r in results:
        per_pool = r.cpu_s / r.size * 100 if r.cpu_s is not None else None
        per_reconcile = (
            r.cpu_s / r.reconciles * 100 if r.cpu_s is not None and r.reconciles else None
        )
        print(
            f"| {r.size} | {_fmt(r.apply_s, ' s')} | {_fmt(r.baseline_s, ' s')} "
            f"| {r.apply_s / r.baseline_s:.2f}x | {_fmt(r.half_ready_s, ' s')} | "
            f"{_fmt(r.ready_s, ' s') if r.ready_s is not None else 'not within deadline'} "
            f"| {_fmt(r.ready_s / r.apply_s if r.ready_s else None, 'x')} "
            f"| {r.ready}/{r.size} | {r.deployments} | {r.pods_running} "
            f"| {_fmt(r.rss_mb, ' MB', 1)} | {_fmt(r.cpu_s)} "
            f"| {_fmt(per_pool)} | {_fmt(per_reconcile)} |"
        )


def parse_args(argv: list[str]) -> argparse.Namespace:
    env = os.environ
    parser = argparse.ArgumentParser(prog="python -m benchmarks operator")
    parser.add_argument(
        "--sizes",
        default=env.get("AGENTPOOL_BENCH_SIZES", "1,100,500"),
        help="comma-separated pool counts (default 1,100,500)",
    )
    parser.add_argument(
        "--operator-pid",
        "--operator",
        type=int,
        default=int(env["AGENTPOOL_BENCH_OPERATOR_PID"])
        if env.get("AGENTPOOL_BENCH_OPERATOR_PID")
        else None,
        help="PID of the running operator, for RSS and CPU (env AGENTPOOL_BENCH_OPERATOR_PID)",
    )
    parser.add_argument(
        "--metrics-url",
        default=env.get("AGENTPOOL_BENCH_METRICS_URL"),
        help="the operator's /metrics URL, for reconciles (env AGENTPOOL_BENCH_METRICS_URL)",
    )
    parser.add_argument(
        "--deadline",
        type=float,
        default=float(env.get("AGENTPOOL_BENCH_DEADLINE", "300")),
        help="seconds to wait for all pools of one size to be Ready",
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs per size (median shown)")
    return parser.parse_args(argv)


def median_result(runs: list[SizeResult]) -> SizeResult:
    """The run with the median time to Ready (not-Ready runs sort last)."""
    ordered = sorted(runs, key=lambda r: r.ready_s if r.ready_s is not None else float("inf"))
    return ordered[len(ordered) // 2]


def main(argv: list[str] | None = None) -> None:
    # From `python -m benchmarks` (argv None): settings from the environment only.
    args = parse_args(argv if argv is not None else [])
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    kubeconfig = kubeconfig_path()
    api = config.new_client_from_config(config_file=str(kubeconfig))
    # The writers share one connection pool; as many connections as writers.
    api.rest_client.pool_manager.connection_pool_kw["maxsize"] = WRITERS
    print(f"kubeconfig {kubeconfig}; operator pid {args.operator_pid or 'not given'}")
    if args.operator_pid is None:
        print("(no operator PID: RSS and CPU are not measured)")
    results = []
    for size in sizes:
        runs = [
            run_size(
                api,
                size,
                deadline_s=args.deadline,
                operator_pid=args.operator_pid,
                metrics_url=args.metrics_url,
            )
            for _ in range(args.repeat)
        ]
        chosen = median_result(runs)
        if args.repeat > 1:
            spread = [r.ready_s for r in runs if r.ready_s is not None]
            if spread:
                print(
                    f"  {size} pools: Ready in {min(spread):.2f}-{max(spread):.2f} s "
                    f"over {len(spread)}/{len(runs)} runs, median "
                    f"{statistics.median(spread):.2f} s"
                )
        results.append(chosen)
    report(results)


if __name__ == "__main__":
    main(sys.argv[1:])
