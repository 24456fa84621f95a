"""The runtime's HTTP API (FastAPI). Health, readiness and metrics for now; chat, tools,
memory and tasks are added by the features that own them."""

from __future__ import annotations

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest


def create_app() -> FastAPI:
    """Build the application. Pure construction: nothing connects until it serves."""
    app = FastAPI(title="Agentpool agent runtime", version="0.1.0")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> dict[str, str]:
        return {"status": "ready"}

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return app
