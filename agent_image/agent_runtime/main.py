"""`agentpool-agent`: the process every agent pod runs."""

from __future__ import annotations

import argparse
import json
import os
import urllib.request
from pathlib import Path

import structlog
import uvicorn

from agent_runtime.config import (
    PoolIdentity,
    RuntimeConfig,
    RuntimeConfigError,
    load_runtime_config,
)
from agent_runtime.logging_config import configure_logging
from agent_runtime.server import create_app

log = structlog.get_logger(__name__)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="agentpool-agent", description=__doc__)
    parser.add_argument("--host", default=os.environ.get("AGENTPOOL_HOST", "0.0.0.0"))  # noqa: S104 - a pod serves on all its interfaces
    parser.add_argument("--port", type=int, default=int(os.environ.get("AGENTPOOL_PORT", "8080")))
    parser.add_argument("--log-level", default=os.environ.get("AGENTPOOL_LOG_LEVEL", "INFO"))
    parser.add_argument(
        "--config",
        type=Path,
        default=os.environ.get("AGENTPOOL_CONFIG"),
        help="the runtime config (YAML/JSON) the operator mounts; default: AGENTPOOL_CONFIG",
    )
    parser.add_argument(
        "--drain",
        action="store_true",
        help="ask the runtime on --port (this pod) to drain, wait for it, and exit "
        "(the preStop hook)",
    )
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=120.0,
        help="seconds the drain waits for running turns (default 120)",
    )
    return parser.parse_args(argv)


def drain(port: int, timeout: float) -> int:
    """POST /v1/drain on this pod and wait for the answer; the exit status says how it went."""
    url = f"http://127.0.0.1:{port}/v1/drain?timeoutSeconds={timeout:g}"
    request = urllib.request.Request(url, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout + 5) as response:  # noqa: S310
            answer = json.loads(response.read())
    except OSError as exc:
        log.error("drain request failed", error=str(exc))
        return 1
    log.info("drained", **answer)
    return 0 if answer.get("drained") else 1


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    configure_logging(args.log_level)
    if args.drain:
        raise SystemExit(drain(args.port, args.drain_timeout))
    if args.config is None:
        log.warning("no --config: serving pool default/local, no tools, working memory only")
        config = RuntimeConfig(pool=PoolIdentity(namespace="default", name="local"))
    else:
        try:
            config = load_runtime_config(args.config)
        except RuntimeConfigError as exc:
            log.error("invalid runtime config", error=str(exc))
            raise SystemExit(2) from exc
    uvicorn.run(
        create_app(config),
        host=args.host,
        port=args.port,
        log_config=None,
        # SIGTERM: requests in flight (turns) get as long as a turn may take.
        timeout_graceful_shutdown=config.agent.limits.turn_timeout_seconds,
    )
