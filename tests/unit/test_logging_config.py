"""What reaches the log: the HTTP clients' line per request only at DEBUG."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from agent_runtime.logging_config import configure_logging


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    clients = {name: logging.getLogger(name).level for name in ("httpx", "httpx2")}
    yield
    root.handlers[:], root.level = handlers, level
    for name, was in clients.items():
        logging.getLogger(name).setLevel(was)


@pytest.mark.parametrize("client", ["httpx", "httpx2"])
def test_a_line_per_request_is_kept_for_debug(client: str) -> None:
    configure_logging("INFO", "json")
    logger = logging.getLogger(client)
    assert not logger.isEnabledFor(logging.INFO)
    assert logger.isEnabledFor(logging.WARNING)
    assert logging.getLogger("agent_runtime.agent").isEnabledFor(logging.INFO)
    configure_logging("DEBUG", "json")
    assert logger.isEnabledFor(logging.DEBUG)
    configure_logging("ERROR", "json")
    assert not logger.isEnabledFor(logging.WARNING)
