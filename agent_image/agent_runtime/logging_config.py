"""structlog set-up shared by the runtime and the operator: JSON in pods, pretty in a terminal."""

from __future__ import annotations

import logging
import os
import sys

import structlog


def wants_json(stream_is_tty: bool, env: dict[str, str]) -> bool:
    """JSON unless a person is watching; AGENTPOOL_LOG_FORMAT=json|console overrides."""
    forced = env.get("AGENTPOOL_LOG_FORMAT", "").lower()
    if forced in {"json", "console"}:
        return forced == "json"
    return not stream_is_tty


_CHATTY_CLIENTS = ("httpx", "httpx2")
"""HTTP client loggers whose INFO lines are one per request sent (`httpx2`: the client
the `openai` package uses)."""


def configure_logging(level: str = "INFO", log_format: str | None = None) -> None:
    """Route structlog and stdlib logging (uvicorn, kopf, httpx) through one renderer.

    `log_format` ("json" or "console") wins over AGENTPOOL_LOG_FORMAT and the terminal check.
    """
    env = dict(os.environ)
    if log_format:
        env["AGENTPOOL_LOG_FORMAT"] = log_format
    as_json = wants_json(sys.stderr.isatty(), env)
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *([structlog.processors.format_exc_info] if as_json else []),
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs every request it sends at INFO ("HTTP Request: POST ... 200"): a line per
    # model and tool call without its latency or outcome, which our own lines carry (and
    # a measurable share of a turn's time). Kept at DEBUG, and for its warnings.
    quiet = max(logging.WARNING, root.level) if root.level > logging.DEBUG else root.level
    for name in _CHATTY_CLIENTS:
        logging.getLogger(name).setLevel(quiet)
