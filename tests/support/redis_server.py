"""A real redis-server on a free loopback port, started and stopped by the tests."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import redis

from tests.support.wait import wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    # Installs Debian's package when missing; fails loudly rather than skipping tests.
    out = subprocess.run(
        [str(REPO_ROOT / "hack" / "ensure-redis.sh")], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"redis-server is not available: {out.stderr.strip()}")
    return out.stdout.strip()


@dataclass
class RedisServer:
    """One redis-server process. `stop()` and `start()` again keep the same port and data."""

    port: int = field(default_factory=free_port)
    appendonly: bool = True
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="agentpool-redis-")))
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        with (self.workdir / "redis.log").open("ab") as log:
            self.process = self._spawn(log)
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.2)
        try:
            wait_until(
                lambda: self._alive() and client.ping(),
                timeout=15,
                what=f"redis-server on port {self.port} (log: {self.workdir / 'redis.log'})",
            )
        finally:
            client.close()

    def _spawn(self, log: IO[bytes]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                redis_server_binary(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.workdir),
                "--save",
                "",
                "--appendonly",
                "yes" if self.appendonly else "no",
                "--appendfsync",
                "everysec",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def _alive(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            log = (self.workdir / "redis.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"redis-server exited with {self.process.returncode}:\n{log}")
        return True

    def stop(self, *, kill: bool = False) -> None:
        """Stop the server; `kill=True` sends SIGKILL (a crash), otherwise SIGTERM."""
        if self.process is None:
            return
        if kill:
            self.process.kill()
        else:
            self.process.terminate()
        self.process.wait(timeout=15)
        self.process = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
