"""What the operator renders so a scale-down never cuts a running turn.

The pod's preStop hook runs `agentpool-agent --drain`: the replica turns unready, takes
no new turns, and the hook returns once the turns it holds have finished (or the
deadline passed). Kubernetes counts the hook inside the termination grace period, so
the period is the drain deadline plus a margin for the SIGTERM shutdown that follows.
Pure: the operator imports only `agent_runtime.config`.
"""

from __future__ import annotations

from agent_runtime.config.agent import AgentSettings

SHUTDOWN_MARGIN_SECONDS = 15
"""Time after the drain for SIGTERM: close connections, withdraw the load sample, exit."""


def drain_deadline_seconds(agent: AgentSettings) -> int:
    """How long a drain waits: no turn may run longer than its wall-time limit."""
    return agent.limits.turn_timeout_seconds


def pre_stop_command(agent: AgentSettings, port: int = 8080) -> list[str]:
    """The container's `lifecycle.preStop.exec.command`."""
    return [
        "agentpool-agent",
        "--drain",
        f"--port={port}",
        f"--drain-timeout={drain_deadline_seconds(agent)}",
    ]


def termination_grace_period_seconds(agent: AgentSettings) -> int:
    """The pod's `terminationGracePeriodSeconds`."""
    return drain_deadline_seconds(agent) + SHUTDOWN_MARGIN_SECONDS
