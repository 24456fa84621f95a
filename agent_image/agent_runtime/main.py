"""`agentpool-agent`: the process every agent pod runs.

The HTTP edge is bounded here (flags, or their `AGENTPOOL_*` variables): request bodies
(`--max-body-bytes`, 413), the time to send headers (`--header-timeout`) and a body
(`--body-timeout`, 408), open connections (`--max-connections`: past it uvicorn answers
503), idle keep-alive connections (`--keep-alive`), and the size of the request head
(16 KiB).
"""

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
from agent_runtime.edge import EdgeLimits, guarded_protocol
from agent_runtime.logging_config import configure_logging

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
    defaults = EdgeLimits()
    env = os.environ.get
    parser.add_argument(
        "--max-body-bytes",
        type=int,
        default=int(env("AGENTPOOL_MAX_BODY_BYTES", defaults.max_body_bytes)),
    )
    parser.add_argument(
        "--body-timeout",
        type=float,
        default=float(env("AGENTPOOL_BODY_TIMEOUT", defaults.body_timeout_seconds)),
    )
    parser.add_argument(
        "--header-timeout",
        type=float,
        default=float(env("AGENTPOOL_HEADER_TIMEOUT", defaults.header_timeout_seconds)),
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        default=int(env("AGENTPOOL_MAX_CONNECTIONS", defaults.max_connections)),
    )
    parser.add_argument(
        "--keep-alive",
        type=int,
        default=int(env("AGENTPOOL_KEEP_ALIVE", defaults.keep_alive_seconds)),
    )
    return parser.parse_args(argv)


MAX_REQUEST_HEAD_BYTES = 16 * 1024


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
    # Imported here, not at the top: the preStop hook (`--drain`) needs none of the
    # server, and importing it all made every pod's stop seconds slower.
    from agent_runtime.server import create_app

    limits = EdgeLimits(
        max_body_bytes=args.max_body_bytes,
        body_timeout_seconds=args.body_timeout,
        header_timeout_seconds=args.header_timeout,
        max_connections=args.max_connections,
        keep_alive_seconds=args.keep_alive,
    )
    uvicorn.run(
        create_app(config, limits=limits),
        host=args.host,
        port=args.port,
        log_config=None,
        access_log=False,  # `request_metrics` logs each request, with its route and time
        http=guarded_protocol(limits.header_timeout_seconds),
        limit_concurrency=limits.max_connections,
        timeout_keep_alive=limits.keep_alive_seconds,
        h11_max_incomplete_event_size=MAX_REQUEST_HEAD_BYTES,
        # SIGTERM: requests in flight (turns) get as long as a turn may take.
        timeout_graceful_shutdown=config.agent.limits.turn_timeout_seconds,
    )
