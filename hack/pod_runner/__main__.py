"""`python -m hack.pod_runner`: run the pod runner until SIGINT or SIGTERM.

    python -m hack.pod_runner --kubeconfig ~/.cache/agentpool/kubeconfig-agentpool-dev.yaml \\
        --namespace default --front default/customer-support=18081 \\
        --alias agentpool-redis.agentpool-system.svc:6379=127.0.0.1:6379 \\
        --status-port 18090 --status-file /tmp/pods.json

`GET /status` on the status port (and the status file) list each pool's front URL and
its processes; `GET /fronts/NS/POOL` gives a pool's front URL before any pod runs.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from agent_runtime.logging_config import configure_logging
from hack.pod_runner.plan import DEFAULT_SELECTOR
from hack.pod_runner.runner import PodRunner, PoolKey, RunnerSettings


def _pair(text: str) -> tuple[str, str]:
    left, sep, right = text.partition("=")
    if not sep or not left or not right:
        raise argparse.ArgumentTypeError(f"expected LEFT=RIGHT, got {text!r}")
    return left, right


def _front(text: str) -> tuple[PoolKey, int]:
    key, port = _pair(text)
    namespace, sep, pool = key.partition("/")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected NAMESPACE/POOL=PORT, got {text!r}")
    return (namespace, pool), int(port)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m hack.pod_runner", description=__doc__)
    parser.add_argument("--kubeconfig", type=Path, default=None)
    parser.add_argument(
        "--namespace",
        action="append",
        default=[],
        help="watch this namespace (repeat; default: every namespace)",
    )
    parser.add_argument("--selector", default=DEFAULT_SELECTOR, help="the pods' label selector")
    parser.add_argument("--workdir", type=Path, default=None, help="pods' files and logs")
    parser.add_argument(
        "--front",
        type=_front,
        action="append",
        default=[],
        help="NAMESPACE/POOL=PORT: a fixed front port (others get a free one)",
    )
    parser.add_argument(
        "--alias",
        type=_pair,
        action="append",
        default=[],
        help="CLUSTER_HOST:PORT=LOCAL_HOST:PORT: where a Service the pods name is on this machine",
    )
    parser.add_argument("--pending-timeout", type=float, default=10.0)
    parser.add_argument("--status-port", type=int, default=0)
    parser.add_argument("--status-file", type=Path, default=None)
    parser.add_argument(
        "--drain-on-stop", action="store_true", help="drain every process when stopping"
    )
    parser.add_argument(
        "--fork-server",
        action="store_true",
        help="fork each pod's process from one that has imported the runtime (warm starts)",
    )
    parser.add_argument(
        "--image",
        default=None,
        help="run each pod's agent container in this image with `buildah run` (image mode: "
        "docs/dev-cluster.md); not with --fork-server",
    )
    parser.add_argument(
        "--pod-network-port",
        type=int,
        default=None,
        help="serve the pod network here: an HTTP proxy to each pod's process by pod IP "
        "(the operator's activator reaches pods through it; 0: a free port)",
    )
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    if args.image and args.fork_server:
        parser.error("--image runs the image's own runtime: it does not take --fork-server")
    return args


async def run(args: argparse.Namespace) -> None:
    settings = RunnerSettings(
        kubeconfig=args.kubeconfig,
        namespaces=tuple(args.namespace),
        label_selector=args.selector,
        workdir=args.workdir,
        front_ports=dict(args.front),
        aliases=dict(args.alias),
        pending_timeout=args.pending_timeout,
        status_port=args.status_port,
        status_file=args.status_file,
        drain_on_stop=args.drain_on_stop,
        fork_server=args.fork_server,
        image=args.image or None,
        pod_network_port=args.pod_network_port,
    )
    runner = PodRunner(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await runner.start()
    try:
        await stop.wait()
    finally:
        await runner.stop()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    configure_logging(args.log_level)
    # One line per probe and proxied request is noise; the runner logs what changes.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    asyncio.run(run(args))
    # Every process is stopped and every file written; the watch threads may sit in a
    # socket read for up to a minute, and waiting for the interpreter to tear them down
    # made `make dev-down` wait too. Leave now.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
