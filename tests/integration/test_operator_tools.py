"""AgentTool status and MCP discovery: what the server offers shows in the tool's status,
discovery runs off the reconcile path (a server down blocks no pool) and never rolls a
pool's pods."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client

from tests.integration.crd_install import install_crds
from tests.integration.test_operator_reconcile import GROUP, MODEL, VERSION, Api, _ready
from tests.support.cluster import Cluster
from tests.support.operator_process import OperatorProcess, operator_running
from tests.support.redis_server import REPO_ROOT, free_port
from tests.support.wait import wait_until


@pytest.fixture
def mcp_server() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.mcp_server", f"--port={port}"], cwd=REPO_ROOT
    )
    url = f"http://127.0.0.1:{port}/mcp"

    def up() -> bool:
        assert proc.poll() is None, "the MCP server exited"
        return httpx.get(f"http://127.0.0.1:{port}/", timeout=1).status_code < 500

    try:
        wait_until(up, timeout=30, what="the MCP server")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def operator(cluster: Cluster, namespace: str, tmp_path: Path) -> Iterator[OperatorProcess]:
    install_crds(cluster)
    with operator_running(cluster, [namespace], tmp_path / "operator.log") as handle:
        yield handle


def _status(kube: Api, name: str) -> dict[str, Any]:
    found: dict[str, Any] = kube.custom.get_namespaced_custom_object(
        GROUP, VERSION, kube.ns, "agenttools", name
    )
    return found.get("status") or {}


def _condition(status: dict[str, Any], type_: str) -> tuple[str, str] | None:
    for c in status.get("conditions", []):
        if c["type"] == type_:
            return c["status"], c["reason"]
    return None


def test_what_an_mcp_server_offers_shows_in_the_tools_status(
    operator: OperatorProcess, kube_api: client.ApiClient, namespace: str, mcp_server: str
) -> None:
    kube = Api(kube_api, namespace)
    kube.secret("llm", {"api-key": "k"})
    kube.create("agenttools", "calc", {"description": "A calculator.", "mcp": {"url": mcp_server}})
    kube.create(
        "agenttools",
        "down",
        {
            "description": "Nobody home.",
            "mcp": {"url": "http://127.0.0.1:9/mcp", "timeoutSeconds": 2},
        },
    )
    kube.create("agenttools", "lookup", {"description": "d", "agent": {"poolName": "other"}})
    wait_until(
        lambda: _condition(_status(kube, "calc"), "Discovered") == ("True", "Discovered"),
        timeout=60,
        what="calc discovered",
    )
    assert _status(kube, "calc")["discovered"]["names"] == ["add", "shout"]
    wait_until(
        lambda: _condition(_status(kube, "down"), "Discovered") == ("False", "DiscoveryFailed"),
        timeout=60,
        what="the unreachable server reported",
    )
    assert _condition(_status(kube, "lookup"), "Ready") == ("True", "Accepted")
    assert _status(kube, "lookup")["implementation"] == "Agent"
    # A pool using both MCP tools is Ready: a server down blocks nothing.
    kube.create(
        "agentpools",
        "user",
        {
            "instructions": "Hi.",
            "model": MODEL,
            "tools": {"refs": [{"name": "calc"}, {"name": "down"}]},
        },
    )
    wait_until(lambda: _ready(kube, "user"), timeout=90, what="the pool Ready")
    rolled = kube.config_hash("user")
    # Asking for a tool the server lacks is reported; the pool's pods do not roll for it
    # beyond the spec change itself (discovery is not in the hash).
    kube.patch("agenttools", "calc", {"spec": {"mcp": {"toolNames": ["add", "divide"]}}})
    wait_until(
        lambda: _condition(_status(kube, "calc"), "Discovered") == ("False", "ToolsMissing"),
        timeout=60,
        what="the missing tool reported",
    )
    assert _status(kube, "calc")["discovered"]["names"] == ["add"]
    wait_until(
        lambda: kube.config_hash("user") != rolled, timeout=30, what="the spec change rendered"
    )
    after_spec = kube.config_hash("user")
    assert _condition(_status(kube, "down"), "Ready") == ("True", "Accepted")
    assert kube.config_hash("user") == after_spec
