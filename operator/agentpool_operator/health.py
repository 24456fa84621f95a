"""GET /healthz of the operator process, served for its whole life: a standby replica
waiting for the Lease is healthy too (kopf's own liveness endpoint exists only while kopf
runs, so a standby would be restarted by its liveness probe)."""

from __future__ import annotations

from aiohttp import web

from agentpool_operator.metrics import LEADER


class Leadership:
    """Whether this replica leads: for /healthz and the agentpool_operator_leader gauge."""

    leading = False

    @classmethod
    def set(cls, leading: bool) -> None:
        cls.leading = leading
        LEADER.set(1 if leading else 0)


async def _healthz(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "leader": Leadership.leading})


async def serve_health(port: int) -> web.AppRunner:
    """Start serving /healthz on `port` (all interfaces); stop with `runner.cleanup()`."""
    app = web.Application()
    app.router.add_get("/healthz", _healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host="0.0.0.0", port=port).start()  # noqa: S104 - the kubelet probes the pod IP
    return runner
