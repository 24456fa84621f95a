"""Paired A/B of chat-turn overhead: the runtime from two (or more) source trees side by
side, with the bare baseline, on one Redis and one instant model, in alternating rounds.

Run (an old tree from git, the checkout as the new one):

    git archive <rev> agent_image | tar -x -C /tmp/old
    .venv/bin/python -m benchmarks.ab_chat old=/tmp/old/agent_image new=agent_image

`bench_chat` measures one tree; its figures move with the machine (on the shared 2-core
VM the bare turn alone varies 2x between hours). Here every tree meets the same
machine in every round, and the figure that moves least, the runtime process's CPU time
per turn (from /proc), is printed beside the median latency: both as medians over the
rounds, and both against the bare baseline's in the same rounds. Every turn is a
one-client `POST /v1/chat` on a new conversation, as `bench_chat`'s "chat turn" row.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from subprocess import Popen

from benchmarks.bench_chat import drive, runtime_config, uvicorn, wait_ready
from tests.support.redis_server import RedisServer, free_port

_START = "import sys; from agent_runtime.main import main; main(sys.argv[1:])"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_runtime(
    name: str, tree: Path, model_url: str, redis_url: str, tmp: Path
) -> tuple[Popen[bytes], str]:
    port = free_port()
    config = runtime_config(name, model_url, redis_url)
    (tmp / f"{name}.json").write_text(json.dumps(config))
    with (tmp / f"{name}.log").open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _START,
                "--host=127.0.0.1",
                f"--port={port}",
                f"--config={tmp / (name + '.json')}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "AGENTPOOL_LOG_FORMAT": "json", "PYTHONPATH": str(tree.resolve())},
        )
    return proc, f"http://127.0.0.1:{port}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ab_chat", description=__doc__)
    parser.add_argument("trees", nargs="+", metavar="NAME=AGENT_IMAGE_DIR")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--turns", type=int, default=150, help="turns per round and tree")
    args = parser.parse_args(argv)
    trees = {name: Path(path) for name, _, path in (t.partition("=") for t in args.trees)}
    redis = RedisServer(appendonly=False)
    redis.start()
    tmp = Path(tempfile.mkdtemp(prefix="ab-chat-"))
    procs: dict[str, Popen[bytes]] = {}
    try:
        model_port, bare_port = free_port(), free_port()
        model_url = f"http://127.0.0.1:{model_port}"
        procs["(model)"] = uvicorn(
            "benchmarks.chat_servers:model_app", model_port, {}, tmp / "m.log"
        )
        wait_ready(model_url, "/docs", procs["(model)"])
        env = {"BENCH_MODEL_URL": f"{model_url}/v1"}
        procs["bare"] = uvicorn("benchmarks.chat_servers:bare_app", bare_port, env, tmp / "b.log")
        urls = {"bare": f"http://127.0.0.1:{bare_port}"}
        for name, tree in trees.items():
            procs[name], urls[name] = start_runtime(name, tree, model_url, redis.url, tmp)
        for name, url in urls.items():
            wait_ready(url, "/docs" if name == "bare" else "/readyz", procs[name])
        names = list(urls)
        cpu: dict[str, list[float]] = {n: [] for n in names}
        latency: dict[str, list[float]] = {n: [] for n in names}
        for name in names:  # warm up
            asyncio.run(drive(urls[name], 1, 50))
        for round_ in range(args.rounds):
            for name in names if round_ % 2 == 0 else reversed(names):
                before = cpu_seconds(procs[name].pid)
                _, latencies = asyncio.run(drive(urls[name], 1, args.turns))
                cpu[name].append((cpu_seconds(procs[name].pid) - before) / args.turns * 1000)
                latency[name].append(statistics.median(latencies))
        base_cpu, base_latency = statistics.median(cpu["bare"]), statistics.median(latency["bare"])
        print(f"{args.rounds} rounds of {args.turns} one-client turns; medians over rounds")
        for name in names:
            c, lat = statistics.median(cpu[name]), statistics.median(latency[name])
            print(
                f"  {name:12s} CPU/turn {c:5.2f} ms (+{c - base_cpu:4.2f})"
                f"  latency {lat:5.2f} ms (+{lat - base_latency:4.2f})"
                f"  [rounds {min(latency[name]):.2f}-{max(latency[name]):.2f}]"
            )
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            proc.wait(timeout=30)
        redis.cleanup()


if __name__ == "__main__":
    main()
