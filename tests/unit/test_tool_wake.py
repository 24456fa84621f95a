"""Which failures of a pool-as-tool call say that the pool has no ready replica (and may
be at zero): those wake it and are retried; a replica's own 503 is its answer."""

from __future__ import annotations

import json

from agent_runtime.agent.admission import AtCapacityError, DrainingError
from agent_runtime.api_errors import error_response
from agent_runtime.tools.agent import no_ready_replica
from agent_runtime.tools.errors import (
    ToolConnectError,
    ToolHttpStatusError,
    ToolTimeoutError,
    ToolTransportError,
)


def _replica_503(exc: Exception) -> ToolHttpStatusError:
    status, body, _ = error_response(exc)
    assert status == 503
    return ToolHttpStatusError("t", status, json.dumps(body))


def test_refused_connections_and_a_proxys_503_mean_no_ready_replica() -> None:
    assert no_ready_replica(ToolConnectError("t", "ConnectError: [Errno 111] refused"))
    assert no_ready_replica(ToolHttpStatusError("t", 503, "no healthy upstream"))
    assert no_ready_replica(ToolHttpStatusError("t", 503, '{"message": "no endpoints"}'))


def test_a_replicas_own_answers_and_other_failures_do_not() -> None:
    assert not no_ready_replica(_replica_503(AtCapacityError(4)))
    assert not no_ready_replica(_replica_503(DrainingError()))
    assert not no_ready_replica(ToolHttpStatusError("t", 502, "bad gateway"))
    assert not no_ready_replica(ToolTransportError("t", "ReadError: reset"))  # it was there
    assert not no_ready_replica(ToolTimeoutError("t", 5.0, "request"))
