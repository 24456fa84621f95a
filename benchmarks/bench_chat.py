"""A chat turn's overhead: turns/s and p99 at 1 and 50 clients, and idle memory.

Run: `.venv/bin/python -m benchmarks chat` (about a minute; needs `redis-server`).

Four processes on loopback: a throwaway redis-server, an instant OpenAI-compatible model
(`chat_servers.model_app`), the runtime (`agentpool-agent`, Redis-backed conversations,
load publishing on), and the baseline, a bare FastAPI endpoint that makes the same model
call with the same client (`chat_servers.bare_app`). One client process drives both, in
alternating rounds so machine load hits them alike. Every turn starts a new
conversation (no history growth). What a turn adds: the Redis work (owner claim, writer
lease, load, two appends, lease release), the step, the events, metrics, logs at INFO
rendered as JSON to a file.

Idle memory: VmRSS of the runtime process after start-up and one turn, at rest.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from tests.support.redis_server import RedisServer, free_port

ROUNDS = 5
TURNS_PER_CLIENT = {1: 200, 50: 20}
"""Turns each client makes per round: a round is 200 (1 client) or 1,000 (50) turns."""

BIN = Path(sys.executable).parent


def uvicorn(app: str, port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "uvicorn", app, "--port", str(port), "--log-level", "warning"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
        )


def wait_ready(url: str, path: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120  # a shared, loaded machine starts a runtime slowly
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited with {proc.returncode}")
        try:
            if httpx.get(url + path, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)  # a start-up poll in a benchmark, not a test
    raise RuntimeError(f"{url} did not start")


ERRORS: dict[str, list[str]] = {}


async def drive(url: str, clients: int, turns: int) -> tuple[float, list[float]]:
    """(turns per second, per-turn latencies in ms) for `clients` clients; failed turns
    are counted in ERRORS and left out of the latencies."""
    latencies: list[float] = []
    errors = ERRORS.setdefault(url, [])
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:

        async def one_client(n: int) -> None:
            for i in range(turns):
                body = {"message": f"hello {n}.{i}", "tenant": "bench"}
                started = time.perf_counter()
                try:
                    response = await client.post("/v1/chat", json=body)
                except httpx.HTTPError as exc:
                    errors.append(repr(exc))
                    continue
                if response.status_code != 200:
                    errors.append(f"{response.status_code} {response.text[:200]}")
                    continue
                latencies.append((time.perf_counter() - started) * 1000)

        started = time.perf_counter()
        await asyncio.gather(*(one_client(n) for n in range(clients)))
        elapsed = time.perf_counter() - started
    return clients * turns / elapsed, latencies


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def measure(agent_url: str, bare_url: str) -> None:
    for clients, turns in TURNS_PER_CLIENT.items():
        await drive(agent_url, clients, max(turns // 4, 2))  # warm up
        await drive(bare_url, clients, max(turns // 4, 2))
        rates: dict[str, list[float]] = {"agent": [], "bare": []}
        tails: dict[str, list[float]] = {"agent": [], "bare": []}
        medians: dict[str, list[float]] = {"agent": [], "bare": []}
        for _ in range(ROUNDS):
            for name, url in (("agent", agent_url), ("bare", bare_url)):
                rate, latencies = await drive(url, clients, turns)
                rates[name].append(rate)
                tails[name].append(p99(latencies))
                medians[name].append(statistics.median(latencies))
        print(f"\n{clients} client(s), {ROUNDS} rounds of {clients * turns} turns")
        for name in ("bare", "agent"):
            print(
                f"  {name:<6} {statistics.median(rates[name]):8.1f} turns/s "
                f"(rounds {min(rates[name]):.1f}-{max(rates[name]):.1f})  "
                f"median {statistics.median(medians[name]):6.2f} ms  "
                f"p99 {statistics.median(tails[name]):6.2f} ms "
                f"(rounds {min(tails[name]):.2f}-{max(tails[name]):.2f})"
            )
        added = statistics.median(medians["agent"]) - statistics.median(medians["bare"])
        ratio = statistics.median(rates["bare"]) / statistics.median(rates["agent"])
        print(f"  overhead per turn (median latency, agent - bare): {added:.2f} ms (goal < 2 ms)")
        print(f"  throughput ratio bare/agent: {ratio:.2f}x")
        for url, errors in ERRORS.items():
            if errors:
                print(f"  {len(errors)} failed turns at {url}, e.g. {errors[0]}")
            errors.clear()


def main() -> None:
    if shutil.which("redis-server") is None:
        print("SKIPPED: redis-server is not installed (hack/ensure-redis.sh)")
        return
    redis = RedisServer(appendonly=False)
    redis.start()
    tmp = Path(tempfile.mkdtemp(prefix="bench-chat-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        model_port, bare_port, agent_port = free_port(), free_port(), free_port()
        model_url = f"http://127.0.0.1:{model_port}"
        procs.append(uvicorn("benchmarks.chat_servers:model_app", model_port, {}, tmp / "m.log"))
        wait_ready(model_url, "/docs", procs[-1])
        bare_env = {"BENCH_MODEL_URL": f"{model_url}/v1"}
        procs.append(
            uvicorn("benchmarks.chat_servers:bare_app", bare_port, bare_env, tmp / "b.log")
        )
        config = {
            "pool": {"namespace": "bench", "name": "chat"},
            "auth": {"mode": "disabled"},  # the baseline checks no token either
            "agent": {"instructions": "be brief", "concurrency": 64},
            "model": {"primary": {"name": "instant", "baseUrl": f"{model_url}/v1"}},
            "memory": {"redis": {"url": redis.url}},
        }
        (tmp / "config.json").write_text(json.dumps(config))
        with (tmp / "agent.log").open("wb") as out:
            procs.append(
                subprocess.Popen(
                    [
                        str(BIN / "agentpool-agent"),
                        "--host=127.0.0.1",
                        f"--port={agent_port}",
                        f"--config={tmp / 'config.json'}",
                    ],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, "AGENTPOOL_LOG_FORMAT": "json"},
                )
            )
        agent_url, bare_url = f"http://127.0.0.1:{agent_port}", f"http://127.0.0.1:{bare_port}"
        wait_ready(agent_url, "/readyz", procs[-1])
        wait_ready(bare_url, "/docs", procs[1])
        httpx.post(f"{agent_url}/v1/chat", json={"message": "hi", "tenant": "bench"}, timeout=10)
        time.sleep(2)  # at rest before reading memory
        print(f"idle runtime RSS: {rss_mb(procs[-1].pid):.1f} MB (goal < 120 MB)")
        asyncio.run(measure(agent_url, bare_url))
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:  # e.g. still draining turns whose clients left
                proc.kill()
                proc.wait()
        redis.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
