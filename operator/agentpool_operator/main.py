"""`agentpool-operator`: runs the kopf operator, cluster-wide or for a list of namespaces."""

from __future__ import annotations

import argparse
import os

import kopf

from agent_runtime.logging_config import configure_logging


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
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
        "--liveness",
        default=os.environ.get("AGENTPOOL_LIVENESS", "http://0.0.0.0:8081/healthz"),
        help="kopf liveness endpoint",
    )
    parser.add_argument("--log-level", default=os.environ.get("AGENTPOOL_LOG_LEVEL", "INFO"))
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
    configure_logging(args.log_level)
    namespaces = watched_namespaces(args, dict(os.environ))
    kopf.run(
        clusterwide=not namespaces,
        namespaces=namespaces,
        liveness_endpoint=args.liveness,
        standalone=True,
    )
