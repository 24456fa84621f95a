"""AgentTool status and the discoverer, without a server: a failing or slow server is a
status, the same answer twice writes nothing, and a new generation is asked at once."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from datetime import UTC, datetime

from agentpool_operator import api
from agentpool_operator.controller.discovery import Discovered, Discoverer
from agentpool_operator.controller.tool_status import tool_status

NOW = datetime(2026, 12, 4, tzinfo=UTC)


def _mcp(generation: int = 1, names: list[str] | None = None) -> api.AgentTool:
    spec = {"description": "d", "mcp": {"url": "http://mcp.local/mcp", "toolNames": names or []}}
    return api.AgentTool.model_validate(
        {"metadata": {"name": "calc", "namespace": "ns", "generation": generation}, "spec": spec}
    )


def _conditions(status: dict[str, object]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}  # type: ignore[attr-defined]


def test_the_status_says_what_discovery_found() -> None:
    tool = _mcp(names=["add", "divide"])
    pending = tool_status(tool, None, {}, NOW)
    assert _conditions(pending)["Discovered"] == ("Unknown", "Pending")
    found = Discovered(1, ("add", "shout"), None, NOW)
    status = tool_status(tool, found, pending, NOW)
    assert _conditions(status)["Discovered"] == ("False", "ToolsMissing")
    assert status["discovered"] == {"names": ["add"], "lastDiscoveryTime": "2026-12-04T00:00:00Z"}
    failed = tool_status(tool, Discovered(1, None, "ConnectError", NOW), status, NOW)
    assert _conditions(failed)["Discovered"] == ("False", "DiscoveryFailed")
    assert _conditions(failed)["Ready"] == ("True", "Accepted")
    # An answer for an older generation does not describe this one.
    assert _conditions(tool_status(_mcp(2), found, {}, NOW))["Discovered"] == ("Unknown", "Pending")


def test_the_discoverer_reports_changes_only_and_survives_a_broken_server() -> None:
    async def scenario() -> None:
        answers: list[object] = [("add",), ("add",), RuntimeError("down"), ("add", "shout")]
        changed: list[tuple[str, str]] = []

        async def lister(url: str, headers: Mapping[str, str], seconds: float) -> tuple[str, ...]:
            answer = answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            assert isinstance(answer, tuple)
            return answer

        discoverer = Discoverer(changed.append, interval=3600, lister=lister)
        key = ("ns", "calc")

        async def ask(generation: int) -> Discovered:
            discoverer.results.pop(key, None) if generation < 0 else None
            discoverer._start(key) if generation == 0 else discoverer.want(
                key, generation, "u", {}, 1
            )
            await asyncio.gather(*discoverer._tasks)
            return discoverer.results[key]

        first = await ask(1)
        assert first.names == ("add",)
        assert changed == [key]
        same = await ask(0)  # asked again, same answer: the time it last changed is kept
        assert same == first
        assert changed == [key]
        broken = await ask(0)
        assert broken.names is None
        assert broken.error is not None
        assert len(changed) == 2
        fixed = await ask(2)  # a new generation is asked at once
        assert fixed.names == ("add", "shout")
        assert len(changed) == 3

    asyncio.run(scenario())


def test_both_answer_forms_of_streamable_http_are_read() -> None:
    from agentpool_operator.controller.discovery import _messages

    one = {"jsonrpc": "2.0", "id": 2, "result": {"tools": [{"name": "add"}]}}
    assert _messages(json.dumps(one), "application/json") == [one]
    stream = (
        'event: message\r\ndata: {"jsonrpc": "2.0", "method": "notifications/progress"}\r\n\r\n'
        f"event: message\ndata: {json.dumps(one)}\n\n"
    )
    assert _messages(stream, "text/event-stream") == [
        {"jsonrpc": "2.0", "method": "notifications/progress"},
        one,
    ]
