"""The runtime's side of the tool-runner socket: one connection per call."""

from __future__ import annotations

import asyncio
import contextlib

from agent_runtime.sandbox.errors import SandboxUnavailableError
from agent_runtime.sandbox.framing import frame
from agent_runtime.sandbox.protocol import ProtocolError, RunOutcome, RunRequest
from agent_runtime.sandbox.spawn import SUPERVISOR_MARGIN_SECONDS, outcome_limit

_RUNNER_MARGIN_SECONDS = 2.0


async def run_remote(socket_path: str, request: RunRequest) -> RunOutcome:
    """Send `request` to the tool-runner and wait for its outcome.

    Leaving (cancellation, or the deadline) closes the connection, which tells the runner
    to stop the call and kill what it started. `SandboxUnavailableError` when the runner
    cannot be reached or answers nonsense.
    """
    try:
        reader, writer = await asyncio.open_unix_connection(socket_path)
    except OSError as exc:
        raise SandboxUnavailableError(
            f"the tool-runner at {socket_path} cannot be reached: {exc.strerror or exc}"
        ) from None
    limit = outcome_limit(request)
    try:
        writer.write(frame(request.to_json()))
        await writer.drain()
        deadline = request.timeout_seconds + SUPERVISOR_MARGIN_SECONDS + _RUNNER_MARGIN_SECONDS
        async with asyncio.timeout(deadline):
            raw = await reader.read(limit + 1)
            chunks = [raw]
            size = len(raw)
            while raw and size <= limit:
                raw = await reader.read(limit + 1 - size)
                chunks.append(raw)
                size += len(raw)
    except TimeoutError:
        raise SandboxUnavailableError("the tool-runner did not answer in time") from None
    except OSError as exc:
        raise SandboxUnavailableError(f"the tool-runner connection failed: {exc}") from None
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    if size > limit:
        raise SandboxUnavailableError("the tool-runner answered too much")
    try:
        return RunOutcome.from_json(b"".join(chunks))
    except ProtocolError as exc:
        raise SandboxUnavailableError(f"the tool-runner answered nonsense: {exc}") from None
