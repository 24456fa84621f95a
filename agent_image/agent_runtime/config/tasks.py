"""The tasks section of the runtime config: the durable task queue every replica consumes.

Tasks live in Redis (a stream per pool), so `enabled: true` needs `memory.redis`; the
document is refused otherwise, as a load signal that counts queued tasks is.
"""

from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator

from agent_runtime.config.section import ConfigSection


class TasksSettings(ConfigSection):
    """How this pool's replicas take, run, retry and forget asynchronous tasks."""

    enabled: bool = Field(
        default=False,
        description="Accept POST /v1/tasks and run a task worker on each replica "
        "(needs memory.redis).",
    )
    concurrency: int = Field(
        default=4, ge=1, le=1000, description="Tasks one replica runs at once."
    )
    lease_seconds: float = Field(
        default=30.0,
        ge=0.2,
        le=3600,
        description="A running task's lease: its worker renews it every third of this; "
        "a task whose lease ran out (its worker died) is taken over by another replica. "
        "Long tasks are not re-delivered while their worker lives.",
    )
    max_deliveries: int = Field(
        default=5,
        ge=1,
        le=100,
        description="Deliveries (a worker died, or the handler raised) before a task goes "
        "to the dead-letter stream.",
    )
    result_retention_seconds: int = Field(
        default=86_400,
        ge=1,
        description="How long a finished task's status and result (and its idempotency "
        "key) are kept.",
    )
    dead_letter_max_entries: int = Field(
        default=10_000, ge=1, description="Entries the dead-letter stream keeps (about)."
    )
    max_input_bytes: int = Field(
        default=1_048_576, ge=1, description="Largest task input accepted (its JSON)."
    )
    poll_seconds: float = Field(
        default=1.0,
        gt=0,
        le=10,
        description="How long an idle worker blocks on the stream before looking again "
        "(keep it below memory.redis.socketTimeoutSeconds).",
    )

    @model_validator(mode="after")
    def _poll_inside_lease(self) -> Self:
        if self.poll_seconds >= self.lease_seconds:
            raise ValueError(
                f"tasks.pollSeconds ({self.poll_seconds}) must be shorter than "
                f"tasks.leaseSeconds ({self.lease_seconds})"
            )
        return self
