"""A stand-in for the runtime, run as a separate non-root process: it builds the tool
registry against a tool-runner socket, makes the calls it is given and prints the results.

    python tests/support/runtime_probe.py --uid 65532 < job.json

Started as root so that it can import from this venv (which may live under /root), then
it drops to `--uid` for good before it does anything else: from there on it is a runtime
running as the image runs it, with its secrets in its environment. In `arguments`, the
text RUNTIME_PID is replaced by this process's pid, so a command can aim at it.

job: {"socket": "...", "definitions": [...], "calls": [...], "together": [...]}
  calls run one after another; together run at the same time, after them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

from agent_runtime.config.tools import ToolsConfig
from agent_runtime.tools.build import build_registry
from agent_runtime.tools.registry import ToolRegistry
from agent_runtime.tools.tool import CallContext


def drop_to(uid: int) -> None:
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    assert os.getresuid() == (uid, uid, uid)


def _aimed(arguments: dict[str, Any]) -> dict[str, Any]:
    pid = str(os.getpid())
    return {
        k: v.replace("RUNTIME_PID", pid) if isinstance(v, str) else v for k, v in arguments.items()
    }


async def _one(registry: ToolRegistry, call: dict[str, Any]) -> dict[str, Any]:
    try:
        result = await registry.call(
            call["tool"], _aimed(call["arguments"]), context=CallContext(tenant="probe")
        )
    except Exception as exc:  # the probe reports every outcome
        return {"error": type(exc).__name__, "message": str(exc)}
    return {"value": result.value}


async def run(job: dict[str, Any]) -> dict[str, Any]:
    config = ToolsConfig.model_validate(
        {"definitions": job["definitions"], "commandRunner": {"socket": job["socket"]}}
    )
    registry = await build_registry(config, strict=True)
    try:
        sequential = [await _one(registry, call) for call in job.get("calls", [])]
        together = await asyncio.gather(*(_one(registry, c) for c in job.get("together", [])))
    finally:
        await registry.aclose()
    return {"pid": os.getpid(), "uid": os.getuid(), "calls": sequential, "together": together}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--uid", type=int, required=True)
    args = parser.parse_args()
    job = json.loads(sys.stdin.read())
    drop_to(args.uid)
    print(json.dumps(asyncio.run(run(job))))


if __name__ == "__main__":
    main()
