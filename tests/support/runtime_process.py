"""The agent runtime as a real process (`agentpool-agent`), as the image runs it.

Tests give it a config document; it gets a tokens file (a gateway for any tenant and
one token per named tenant) unless the config brings its own `auth`.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.redis_server import free_port
from tests.support.wait import wait_until

AGENT = str(Path(sys.executable).parent / "agentpool-agent")


@dataclass
class RuntimeProcess:
    """A running runtime: its URL, its process, its log, and the tokens it accepts."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path
    gateway_token: str
    tenant_tokens: dict[str, str] = field(default_factory=dict)

    def client(self, token: str | None = None, **kwargs: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10, **kwargs)

    def alive(self) -> bool:
        return self.process.poll() is None

    def rss_bytes(self) -> int:
        """The process's resident set size (Linux)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]


@contextmanager
def running_runtime(
    config: dict[str, Any],
    workdir: Path,
    *,
    tenants: tuple[str, ...] = ("alice", "bob"),
    args: tuple[str, ...] = (),
    ready_within: float = 30,
) -> Iterator[RuntimeProcess]:
    """Start `agentpool-agent` with `config` and wait until /readyz answers."""
    gateway = secrets.token_urlsafe(24)
    per_tenant = {tenant: secrets.token_urlsafe(24) for tenant in tenants}
    if "auth" not in config:
        tokens = [{"name": "gateway", "token": gateway, "tenant": "*"}] + [
            {"name": f"{t}-app", "token": tok, "tenant": t} for t, tok in per_tenant.items()
        ]
        (workdir / "tokens.json").write_text(json.dumps({"tokens": tokens}))
        config = {**config, "auth": {"tokensFile": str(workdir / "tokens.json")}}
    (workdir / "config.json").write_text(json.dumps(config))
    port = free_port()
    log = workdir / "agent.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                AGENT,
                "--host=127.0.0.1",
                f"--port={port}",
                f"--config={workdir / 'config.json'}",
                *args,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "AGENTPOOL_LOG_FORMAT": "json"},
        )
    runtime = RuntimeProcess(f"http://127.0.0.1:{port}", proc, log, gateway, per_tenant)

    def up() -> bool:
        assert proc.poll() is None, runtime.log_tail()
        with runtime.client() as client:
            return client.get("/readyz").status_code == 200

    try:
        wait_until(up, timeout=ready_within, what="the agent runtime to serve /readyz")
        yield runtime
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
