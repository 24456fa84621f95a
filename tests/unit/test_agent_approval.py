"""Which calls wait for a person: from `requireApproval` on definitions and MCP servers."""

from __future__ import annotations

from agent_runtime.agent.approval import approval_rule
from agent_runtime.config.tools import ToolsConfig


def test_definitions_and_mcp_remote_tools_needing_approval() -> None:
    tools = ToolsConfig.model_validate(
        {
            "definitions": [
                {
                    "name": "refund",
                    "requireApproval": True,
                    "parameters": {"type": "object"},
                    "http": {"url": "http://pay/refund"},
                },
                {"name": "lookup", "parameters": {"type": "object"}, "http": {"url": "http://x"}},
                {
                    "name": "files",
                    "mcp": {"url": "http://mcp/", "requireApproval": ["delete-file"]},
                },
                {"name": "ops", "requireApproval": True, "mcp": {"url": "http://ops/"}},
            ]
        }
    )
    needs = approval_rule(tools)
    assert needs("refund")
    assert not needs("lookup")
    assert needs("files__delete-file")
    assert not needs("files__read_file")
    assert needs("ops__restart")
    assert needs("ops__anything")
    assert not needs("opsx__restart")
