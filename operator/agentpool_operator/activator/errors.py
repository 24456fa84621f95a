"""The activator's answers when it does not proxy: the runtime's one error shape
(`{"error": {"type", "message"}}`, agent_runtime/api_errors.py, which the operator may
not import), so that a client sees the same shape from the activator as from a pod."""

from __future__ import annotations

import math

from aiohttp import web


def error(
    status: int, type_: str, message: str, *, retry_after: float | None = None
) -> web.Response:
    headers = {"Retry-After": str(max(1, math.ceil(retry_after)))} if retry_after else None
    return web.json_response(
        {"error": {"type": type_, "message": message}}, status=status, headers=headers
    )
