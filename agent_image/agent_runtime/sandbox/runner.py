"""`agentpool-tool-runner`: runs command tools for the runtime, over a Unix socket.

In a pod it is its own container: another uid than the runtime, no secrets mounted, no
service-account token, the socket on an emptyDir shared with the runtime container. The
runtime sends one `RunRequest` per connection; the runner starts a supervisor for it
(`supervise`: a per-call subreaper that kills and reaps everything the call started) and
answers with the `RunOutcome`.

The runner is itself a subreaper: if a program kills its own supervisor (same uid), the
call's leftovers come back here. Its only legitimate children are supervisors, which stay
in the runner's session; every program starts in a session of its own, so any child in
another session is a leftover, killed and reaped within a second (`reap_leftovers`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import struct
from pathlib import Path

import structlog

from agent_runtime.logging_config import configure_logging
from agent_runtime.sandbox import landlock
from agent_runtime.sandbox.framing import read_frame
from agent_runtime.sandbox.protocol import ProtocolError, RunOutcome, RunRequest
from agent_runtime.sandbox.spawn import SupervisorPool
from agent_runtime.sandbox.supervise import become_subreaper, children

log = structlog.get_logger("agent_runtime.sandbox.runner")

DEFAULT_SOCKET = "/run/agentpool/tools/runner.sock"
SOCKET_ENV = "AGENTPOOL_TOOL_RUNNER_SOCKET"
_REAP_INTERVAL_SECONDS = 1.0
_SOCKET_MODE = 0o666  # rw for every uid in the pod: SO_PEERCRED decides


def session_of(pid: int) -> int | None:
    """The session id of `pid` (zombies included), None when it is gone."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat_line.rsplit(")", 1)[1].split()
    return int(fields[3])  # state, ppid, pgrp, session


def reap_leftovers() -> int:
    """Kill and reap children that are not supervisors; how many were found."""
    own = os.getsid(0)
    found = 0
    for pid in children():
        sid = session_of(pid)
        if sid is None or sid == own:
            continue
        found += 1
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
    return found


def peer_uid(writer: asyncio.StreamWriter) -> int:
    sock: socket.socket = writer.get_extra_info("socket")
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


class Runner:
    """The socket server; `serve` runs until cancelled."""

    def __init__(
        self,
        socket_path: str,
        *,
        allowed_uids: set[int] | None = None,
        max_concurrent: int = 16,
        work_root: str | None = None,
    ) -> None:
        self.socket_path = socket_path
        self.allowed_uids = allowed_uids
        self.work_root = work_root
        self._slots = asyncio.Semaphore(max_concurrent)
        self._supervisors = SupervisorPool(work_root=work_root)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        outcome: RunOutcome | None
        try:
            outcome = await self._serve_one(reader, peer_uid(writer))
            if outcome is not None:
                writer.write(outcome.to_json())
                await writer.drain()
        except (ConnectionError, OSError) as exc:
            log.info("connection lost", error=str(exc))
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()
            reap_leftovers()

    async def _serve_one(self, reader: asyncio.StreamReader, uid: int) -> RunOutcome | None:
        try:
            # Read the request even from a stranger: closing with unread data would reset
            # the connection, and the caller would not learn why.
            request = RunRequest.from_json(await read_frame(reader))
        except ProtocolError as exc:
            return RunOutcome.refused(str(exc))
        if self.allowed_uids is not None and uid not in self.allowed_uids:
            log.warning("caller refused", peer_uid=uid)
            return RunOutcome.refused(f"uid {uid} may not use this tool-runner")
        async with self._slots:
            call = asyncio.create_task(self._supervisors.run(request))
            hangup = asyncio.create_task(reader.read(1))  # EOF: the caller gave up
            done, _ = await asyncio.wait({call, hangup}, return_when=asyncio.FIRST_COMPLETED)
            if call in done:
                hangup.cancel()
                return call.result()
            call.cancel()  # the supervisor is told to stop and sweeps the call
            with contextlib.suppress(asyncio.CancelledError):
                await call
            log.info("call cancelled by the caller", binary=request.argv[0])
            return None

    def _prepare_socket_path(self) -> Path:
        path = Path(self.socket_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_socket():
            path.unlink()  # a previous runner's; nothing listens on it any more
        return path

    async def serve(self) -> None:
        become_subreaper()
        path = self._prepare_socket_path()
        server = await asyncio.start_unix_server(self.handle, path=str(path))
        # Any uid in the pod may connect; who may *use* it is checked with SO_PEERCRED.
        os.chmod(path, _SOCKET_MODE)
        log.info(
            "tool-runner listening",
            socket=str(path),
            uid=os.getuid(),
            # 0: no Landlock, so concurrent calls are not kept apart (docs/security.md)
            landlock_abi=landlock.abi_version(),
            allowed_uids=sorted(self.allowed_uids) if self.allowed_uids is not None else "any",
        )
        self._supervisors.fill()
        try:
            async with server:
                while True:
                    await asyncio.sleep(_REAP_INTERVAL_SECONDS)
                    if found := reap_leftovers():
                        log.warning("killed leftovers of a call whose supervisor died", count=found)
        finally:
            await self._supervisors.aclose()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="agentpool-tool-runner", description=__doc__)
    parser.add_argument("--socket", default=os.environ.get(SOCKET_ENV, DEFAULT_SOCKET))
    parser.add_argument(
        "--allowed-uid",
        type=int,
        action="append",
        help="a uid that may call (repeatable); default: any process that can reach the socket",
    )
    parser.add_argument("--max-concurrent", type=int, default=16)
    parser.add_argument(
        "--work-root", default=None, help="where per-call directories are made (default /tmp)"
    )
    parser.add_argument("--log-level", default=os.environ.get("AGENTPOOL_LOG_LEVEL", "INFO"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    configure_logging(args.log_level)
    runner = Runner(
        args.socket,
        allowed_uids=set(args.allowed_uid) if args.allowed_uid else None,
        max_concurrent=args.max_concurrent,
        work_root=args.work_root,
    )
    loop = asyncio.new_event_loop()
    task = loop.create_task(runner.serve())
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        loop.run_until_complete(task)
    loop.close()


if __name__ == "__main__":
    main()
