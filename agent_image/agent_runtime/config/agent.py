"""The agent section of the runtime config: what the agent is told, and how much it may do.

The instructions come inline (`instructions`) or from a file the operator mounts from a
ConfigMap key (`instructionsFile`); exactly one of the two is set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Self

from pydantic import Field, model_validator

from agent_runtime.config.section import ConfigSection

DEFAULT_INSTRUCTIONS = "You are a helpful assistant."
"""What a runtime started by hand (without a config document) tells its model."""


class TurnLimits(ConfigSection):
    """Bounds on one turn (one input and everything done to answer it)."""

    max_model_calls_per_turn: int = Field(
        default=8, ge=1, description="Model calls one turn may make, tool rounds included."
    )
    max_tokens_per_turn: int = Field(
        default=64_000, ge=1, description="Prompt and completion tokens one turn may use."
    )
    turn_timeout_seconds: int = Field(default=120, ge=1, description="Wall time one turn may take.")


class AgentSettings(ConfigSection):
    """The agent one replica runs: its instructions, its concurrency and its limits."""

    domain: str | None = Field(
        default=None, max_length=253, description="The business domain the pool serves."
    )
    instructions: str | None = Field(
        default=None, min_length=1, description="The system instructions, inline."
    )
    instructions_file: str | None = Field(
        default=None,
        pattern=r"^/",
        description="An absolute path to a file holding the instructions "
        "(the operator mounts it from a ConfigMap key).",
    )
    concurrency: int = Field(
        default=8, ge=1, le=10_000, description="Turns one replica runs at once."
    )
    limits: TurnLimits = Field(default_factory=TurnLimits, description="Bounds on one turn.")

    @model_validator(mode="after")
    def _one_source_of_instructions(self) -> Self:
        if (self.instructions is None) == (self.instructions_file is None):
            raise ValueError("set exactly one of agent.instructions or agent.instructionsFile")
        return self

    def read_instructions(self) -> str:
        """The instructions text (read from `instructionsFile` when that is the source)."""
        if self.instructions is not None:
            return self.instructions
        assert self.instructions_file is not None  # the validator guarantees one source
        try:
            return Path(self.instructions_file).read_text()
        except OSError as exc:
            raise ValueError(
                f"agent.instructionsFile {self.instructions_file!r} cannot be read: {exc}"
            ) from exc
