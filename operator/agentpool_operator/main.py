"""`agentpool-operator`: runs the kopf operator, cluster-wide or for a list of namespaces."""

from __future__ import annotations

import argparse
import os

import kopf
from prometheus_client import start_http_server

from agent_runtime.logging_config import configure_logging


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ
    parser = argparse.ArgumentParser(prog="agentpool-operator", description=__doc__)
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "--namespace",
        action="append",
        default=[],
        help="watch only this namespace (repeatable); default: AGENTPOOL_WATCH_NAMESPACES "
        "(comma-separated) or the whole cluster",
    )
    scope.add_argument("--all-namespaces", action="store_true", help="watch the whole cluster")
    parser.add_argument(
        "--standalone",
        action="store_true",
        help="run without kopf peering (a single replica; needs no peering objects or RBAC)",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=int(env.get("AGENTPOOL_METRICS_PORT", "8080")),
        help="serve Prometheus metrics on this port (0 disables)",
    )
    parser.add_argument(
        "--health-port",
        type=int,
        default=int(env.get("AGENTPOOL_HEALTH_PORT", "8081")),
        help="serve GET /healthz (kopf liveness) on this port (0 disables)",
    )
    parser.add_argument(
        "--log-level",
        default=env.get("AGENTPOOL_LOG_LEVEL", "info"),
        choices=["debug", "info", "warning", "error"],
        type=str.lower,
    )
    parser.add_argument(
        "--log-format",
        choices=["json", "console"],
        default=None,
        help="default: JSON unless stderr is a terminal",
    )
    return parser.parse_args(argv)


def watched_namespaces(args: argparse.Namespace, env: dict[str, str]) -> list[str]:
    """The namespaces to watch; empty means the whole cluster."""
    if args.all_namespaces:
        return []
    if args.namespace:
        return list(args.namespace)
    return [n.strip() for n in env.get("AGENTPOOL_WATCH_NAMESPACES", "").split(",") if n.strip()]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    configure_logging(args.log_level, args.log_format)
    namespaces = watched_namespaces(args, dict(os.environ))
    if args.metrics_port:
        start_http_server(args.metrics_port)
    kopf.run(
        clusterwide=not namespaces,
        namespaces=namespaces,
        liveness_endpoint=(
            f"http://0.0.0.0:{args.health_port}/healthz" if args.health_port else None
        ),
        standalone=args.standalone,
    )
