"""Forwards a request to one ready pod and streams its answer back.

Method, path, query, headers (Authorization included: the pod checks credentials, the
activator never looks at them) and body go through; the answer streams back chunk by
chunk as the pod sends it (a `stream: true` turn's server-sent events arrive as they
are written, not at the end). Hop-by-hop headers stay on their hop.

On aiohttp, as the operator's other servers: it is in the operator's image already (kopf
runs on it), where a second HTTP stack would not be.
"""

from __future__ import annotations

from collections.abc import Sequence

import aiohttp
from aiohttp import web

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

CHUNK_BYTES = 64 * 1024


class UpstreamUnreachableError(Exception):
    """No ready endpoint accepted the connection."""


def new_session() -> aiohttp.ClientSession:
    """The session the activator reaches pods with: no overall timeout (a turn may take
    minutes), a short connect timeout; no proxy from the environment."""
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=None, connect=5.0),
        trust_env=False,
        auto_decompress=False,
    )


async def forward(
    session: aiohttp.ClientSession,
    request: web.Request,
    body: bytes,
    endpoints: Sequence[Endpoint],
    *,
    pod_proxy: str | None = None,
) -> web.StreamResponse:
    """The first endpoint that accepts the connection answers (nothing reached the
    others, so trying the next is safe even for a POST). `pod_proxy`: an HTTP proxy to
    the pod network (the pod runner's, out of cluster), None in the cluster."""
    headers = [(k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP]
    if request.remote:
        prior = request.headers.get("x-forwarded-for")
        headers.append(
            ("x-forwarded-for", f"{prior}, {request.remote}" if prior else request.remote)
        )
    last: Exception | None = None
    for endpoint in endpoints:
        try:
            upstream = await session.request(
                request.method,
                endpoint.url + request.rel_url.path_qs,
                headers=headers,
                data=body,
                proxy=pod_proxy,
                allow_redirects=False,
            )
        except (aiohttp.ClientConnectorError, aiohttp.ServerTimeoutError) as exc:
            last = exc
            continue
        try:
            answer = web.StreamResponse(
                status=upstream.status,
                headers=[
                    (k, v) for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP
                ],
            )
            await answer.prepare(request)
            async for chunk in upstream.content.iter_any():
                await answer.write(chunk)
            await answer.write_eof()
            return answer
        finally:
            upstream.release()
    raise UpstreamUnreachableError(str(last) if last else "no endpoint")
