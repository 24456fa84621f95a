"""Draining: `POST /v1/drain` makes the replica unready and stops new turns, then waits
(up to `timeoutSeconds`) for the turns it holds to finish. The pod's preStop hook calls
it (`agentpool-agent --drain`), so a scale-down never cuts a running turn; SIGTERM does
the same through the server's shutdown.

It takes no credentials (the hook has none) and answers only on loopback: only a process
inside the pod can drain it, never a caller reaching it through the Service."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request

from agent_runtime.credentials import TenantForbiddenError
from agent_runtime.runtime import Runtime

LOOPBACK = frozenset({"127.0.0.1", "::1"})

router = APIRouter()


# Not in the OpenAPI document: it is the pod's own lifecycle, not the pool's API (a
# client generated from the document must not be able to drain a replica, and a fuzzer
# run over the document must not drain the one it tests).
@router.post("/v1/drain", include_in_schema=False)
async def drain(
    request: Request,
    timeout_seconds: float = Query(default=30.0, ge=0, le=3600, alias="timeoutSeconds"),
) -> dict[str, Any]:
    if request.client is None or request.client.host not in LOOPBACK:
        raise TenantForbiddenError("drain is asked from inside the pod (loopback) only")
    runtime: Runtime = request.app.state.runtime
    drained = await runtime.drain(timeout_seconds)
    return {"drained": drained, "activeTurns": runtime.admission.active}
