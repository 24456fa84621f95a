"""`agentpool-agent`: the process every agent pod runs."""

from __future__ import annotations

import argparse
import os

import uvicorn

from agent_runtime.logging_config import configure_logging
from agent_runtime.server import create_app


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="agentpool-agent", description=__doc__)
    parser.add_argument("--host", default=os.environ.get("AGENTPOOL_HOST", "0.0.0.0"))  # noqa: S104 - a pod serves on all its interfaces
    parser.add_argument("--port", type=int, default=int(os.environ.get("AGENTPOOL_PORT", "8080")))
    parser.add_argument("--log-level", default=os.environ.get("AGENTPOOL_LOG_LEVEL", "INFO"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    configure_logging(args.log_level)
    uvicorn.run(create_app(), host=args.host, port=args.port, log_config=None)
