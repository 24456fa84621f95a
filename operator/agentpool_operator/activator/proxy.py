"""Forwards a request to one ready pod and streams its answer back.

Method, path, query, headers (Authorization included: the pod checks credentials, the
activator never looks at them) and body go through; the answer streams back chunk by
chunk as the pod sends it (a `stream: true` turn's server-sent events arrive as they
are written, not at the end). Hop-by-hop headers stay on their hop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import httpx
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from agentpool_operator.activator.slices import Endpoint

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)


class UpstreamUnreachableError(Exception):
    """No ready endpoint accepted the connection."""


def new_client(pod_proxy: str | None) -> httpx.AsyncClient:
    """The client the activator reaches pods with: no overall timeout (a turn may take
    minutes), a short connect timeout; `pod_proxy`: an HTTP proxy to the pod network (the
    pod runner's, out of cluster), None in the cluster."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(None, connect=5.0), proxy=pod_proxy, trust_env=False
    )


async def forward(
    client: httpx.AsyncClient, request: Request, body: bytes, endpoints: Sequence[Endpoint]
) -> Response:
    """The first endpoint that accepts the connection answers (nothing reached the
    others, so trying the next is safe even for a POST)."""
    headers = [(k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP]
    client_host = request.client.host if request.client else None
    if client_host:
        prior = request.headers.get("x-forwarded-for")
        headers.append(("x-forwarded-for", f"{prior}, {client_host}" if prior else client_host))
    last: Exception | None = None
    for endpoint in endpoints:
        upstream = client.build_request(
            request.method,
            endpoint.url + request.url.path,
            params=request.url.query,
            headers=headers,
            content=body,
        )
        try:
            answer = await client.send(upstream, stream=True)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.ProxyError) as exc:
            last = exc
            continue
        return StreamingResponse(
            _relay(answer),
            status_code=answer.status_code,
            headers={k: v for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP},
            background=BackgroundTask(answer.aclose),
        )
    raise UpstreamUnreachableError(str(last) if last else "no endpoint")


async def _relay(answer: httpx.Response) -> AsyncIterator[bytes]:
    try:
        async for chunk in answer.aiter_raw():
            yield chunk
    finally:
        await answer.aclose()
