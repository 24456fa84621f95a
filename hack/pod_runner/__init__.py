"""The pod runner: kwok's pods run nothing, so this plays the kubelet's part (a process
per Running agent pod, drained when the pod goes away) and kube-proxy's (one local front
port per pool) on this machine. docs/dev-cluster.md says what it does and does not do.

In-process (asyncio): `PodRunner(RunnerSettings(...))`, `await start()`, `front_url()`,
`status()`, `await stop()`. As a child process (tests, benchmarks):
`pod_runner_process(kubeconfig, namespaces, workdir)`. From a shell:
`python -m hack.pod_runner --help`. Image mode (`--image REF`, `image=REF`): each pod's
agent container runs in the agent image with `buildah run` (image.py).
"""

from hack.pod_runner.handle import (
    RunnerProcess,
    RunnerWaitError,
    pod_runner_process,
    start_pod_runner_process,
)
from hack.pod_runner.runner import PodRunner, RunnerSettings
from hack.pod_runner.status import PodProcess, PoolFrontStatus, RunnerStatus

__all__ = [
    "PodProcess",
    "PodRunner",
    "PoolFrontStatus",
    "RunnerProcess",
    "RunnerSettings",
    "RunnerStatus",
    "RunnerWaitError",
    "pod_runner_process",
    "start_pod_runner_process",
]
