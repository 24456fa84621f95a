"""The sandbox's errors; `agent_runtime.tools.command` maps them to tool errors."""

from __future__ import annotations


class SandboxError(Exception):
    """The sandbox could not run the call to its end."""


class SandboxRefusedError(SandboxError):
    """The call was refused before anything ran (bad request, binary missing, busy)."""


class SandboxTimeoutError(SandboxError):
    """The program ran past its wall-clock timeout and was killed with everything it started."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        super().__init__(f"timed out after {seconds:g}s")


class SandboxUnavailableError(SandboxError):
    """The tool-runner cannot be reached, or the supervisor died without an answer."""
