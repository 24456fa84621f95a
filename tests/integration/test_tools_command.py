"""The command sandbox with hostile inputs: each is refused or contained, with a clear
error, and the runtime stays healthy. These start real processes."""

from __future__ import annotations

import json
import signal
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agent_runtime.config.tools import ToolsConfig
from agent_runtime.tools.build import build_registry
from agent_runtime.tools.errors import CommandRefusedError, ToolTimeoutError
from agent_runtime.tools.registry import ToolRegistry
from tests.support.identity import CONTEXT
from tests.support.wait import wait_until

PYTHON = "/usr/bin/python3"  # a system path: the sandbox user can execute it


def python_tool(name: str, *, timeout: float = 5, **limits: Any) -> dict[str, Any]:
    return {
        "name": name,
        "parameters": {
            "type": "object",
            "properties": {"code": {"type": "string"}},
            "required": ["code"],
        },
        "command": {
            "argv": ["python3", "-c", "{code}"],
            "allowedBinaries": [PYTHON],
            "timeoutSeconds": timeout,
            "maxOutputBytes": 4096,
            "limits": {"cpuSeconds": 2, "memoryBytes": 256 << 20, "processes": 8, **limits},
            "env": {"GREETING": "hi"},
        },
        "resilience": {"retry": {"enabled": False}, "circuitBreaker": {"enabled": False}},
    }


def text_tool(name: str, binary: str, *argv: str) -> dict[str, Any]:
    return {
        "name": name,
        "parameters": {"type": "object", "properties": {"value": {"type": "string"}}},
        "command": {"argv": [binary, *argv], "allowedBinaries": [binary], "maxOutputBytes": 1000},
        "resilience": {"circuitBreaker": {"enabled": False}},
    }


@pytest.fixture
async def registry() -> AsyncIterator[ToolRegistry]:
    config = ToolsConfig.model_validate(
        {
            "definitions": [
                text_tool("echo", "echo", "{value}"),
                text_tool("cat", "cat", "{value}"),
                text_tool("ls", "ls", "{value}"),
                text_tool("ls_safe", "ls", "--", "{value}"),
                text_tool("yes", "yes"),
                python_tool("py"),
                python_tool("py_quick", timeout=0.5),
                # The CPU limit (2 s) must be reached before the wall clock, even on a
                # loaded machine where 2 CPU seconds take much longer than 2 s.
                python_tool("py_cpu", timeout=60),
            ]
        }
    )
    built = await build_registry(config)
    yield built
    # Whatever happened in the test, the runtime still runs commands.
    assert (await built.call("echo", {"value": "still alive"}, context=CONTEXT)).value[
        "stdout"
    ] == "still alive\n"
    await built.aclose()


def exists(path: str) -> bool:
    return Path(path).exists()


def processes_with(marker: str) -> list[int]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if marker.encode() in cmdline.read_bytes():
                found.append(int(cmdline.parent.name))
        except OSError:
            continue
    return found


@pytest.mark.parametrize(
    "hostile",
    ["; rm -rf / #", "$(id)", "`id`", "a && b || c | d > e < f", "*", "~root", "'\"\\"],
)
async def test_shell_syntax_is_passed_through_literally(
    registry: ToolRegistry, hostile: str
) -> None:
    result = await registry.call("echo", {"value": hostile}, context=CONTEXT)
    assert result.value["stdout"] == hostile + "\n"
    assert result.value["exitCode"] == 0


@pytest.mark.parametrize("path", ["../../etc/passwd", "/etc/passwd", "a/../../b"])
async def test_path_traversal_is_refused(registry: ToolRegistry, path: str) -> None:
    with pytest.raises(CommandRefusedError, match="outside the working directory"):
        await registry.call("cat", {"value": path}, context=CONTEXT)


@pytest.mark.parametrize("option", ["-la", "--help", "-R/"])
async def test_option_injection_is_refused(registry: ToolRegistry, option: str) -> None:
    with pytest.raises(CommandRefusedError, match="would be read as an option"):
        await registry.call("ls", {"value": option}, context=CONTEXT)


async def test_after_a_double_dash_a_dash_value_is_a_file_name(registry: ToolRegistry) -> None:
    result = await registry.call("ls_safe", {"value": "-la"}, context=CONTEXT)
    assert result.value["exitCode"] != 0
    assert "-la" in result.value["stderr"]  # ls looked for a file called "-la"


async def test_huge_output_is_capped_and_the_writer_killed(registry: ToolRegistry) -> None:
    result = await registry.call("yes", {}, context=CONTEXT)
    assert result.value["truncated"] is True
    assert len(result.value["stdout"]) == 1000
    assert result.value["signal"] == signal.SIGKILL


async def test_an_infinite_loop_hits_the_cpu_limit(registry: ToolRegistry) -> None:
    result = await registry.call("py_cpu", {"code": "while True: pass"}, context=CONTEXT)
    assert result.value["signal"] in (signal.SIGXCPU, signal.SIGKILL)


async def test_a_hang_is_killed_at_the_wall_clock_timeout(registry: ToolRegistry) -> None:
    marker = f"hang-{uuid.uuid4().hex}"
    with pytest.raises(ToolTimeoutError, match=r"command timed out after 0\.5s"):
        await registry.call(
            "py_quick", {"code": f"import time  # {marker}\ntime.sleep(60)"}, context=CONTEXT
        )
    wait_until(lambda: not processes_with(marker), timeout=5, what="the hung process to be gone")


async def test_a_fork_bomb_is_contained_and_cleaned_up(registry: ToolRegistry) -> None:
    marker = f"bomb-{uuid.uuid4().hex}"
    code = (
        f"import os, time  # {marker}\n"
        "while True:\n"
        "    try:\n"
        "        os.fork()\n"
        "    except OSError:\n"
        "        time.sleep(0.01)\n"
    )
    with pytest.raises(ToolTimeoutError):
        await registry.call("py_quick", {"code": code}, context=CONTEXT)
    wait_until(lambda: not processes_with(marker), timeout=5, what="every fork to be killed")


async def test_memory_is_limited(registry: ToolRegistry) -> None:
    result = await registry.call("py", {"code": "x = bytearray(1 << 30)"}, context=CONTEXT)
    assert result.value["exitCode"] == 1
    assert "MemoryError" in result.value["stderr"]


async def test_file_size_is_limited(registry: ToolRegistry) -> None:
    config = ToolsConfig.model_validate(
        {"definitions": [python_tool("writer", fileSizeBytes=1 << 20)]}
    )
    built = await build_registry(config)
    try:
        result = await built.call(
            "writer", {"code": "open('f', 'wb').write(b'x' * (4 << 20))"}, context=CONTEXT
        )
    finally:
        await built.aclose()
    assert result.value["exitCode"] == 1
    assert "File too large" in result.value["stderr"]


async def test_the_environment_is_minimal_and_the_directory_fresh(registry: ToolRegistry) -> None:
    code = (
        "import os, json\n"
        "print(json.dumps({'env': sorted(os.environ), 'cwd': os.getcwd(), 'files': os.listdir()}))"
    )
    first = await registry.call("py", {"code": code}, context=CONTEXT)
    second = await registry.call("py", {"code": code}, context=CONTEXT)
    seen = [json.loads(r.value["stdout"]) for r in (first, second)]
    assert seen[0]["env"] == ["GREETING", "HOME", "LANG", "PATH", "TMPDIR"]
    assert seen[0]["files"] == []
    assert seen[0]["cwd"] != seen[1]["cwd"]
    assert not exists(seen[0]["cwd"])  # removed afterwards
