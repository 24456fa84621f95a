"""HTTP tools: one pooled `httpx.AsyncClient` shared by every HTTP and agent tool.

Responses are read in chunks and abandoned as soon as they pass the tool's
`maxResponseBytes`, so a huge (or endless) body cannot exhaust memory. Failures map to
error kinds: connection trouble `transport`, timeouts `timeout`, 5xx `server`, 429
`rateLimited`, other 4xx `client`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, unquote

import httpx

from agent_runtime.config.secrets import HeaderFromEnv, HeaderValue
from agent_runtime.config.tools import HttpImplementation
from agent_runtime.tools.errors import (
    ToolArgumentRefusedError,
    ToolConfigError,
    ToolConnectError,
    ToolError,
    ToolHttpStatusError,
    ToolResponseTooLargeError,
    ToolTimeoutError,
    ToolTransportError,
)
from agent_runtime.tools.tool import CallContext

_URL_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_DOT_SEGMENTS = frozenset({".", ".."})
_MAX_DECODES = 8


def decoded(value: str) -> str:
    """`value` percent-decoded until it stops changing (double encoding: %252e -> %2e -> .)."""
    for _ in range(_MAX_DECODES):
        once = unquote(value)
        if once == value:
            return value
        value = once
    return value


def changes_path_meaning(value: str) -> bool:
    """Would this placeholder value, once a server decodes it, add a `.` or `..` segment?

    The value is quoted whole (a `/` becomes %2F), but servers and proxies decode before
    they route, so `..`, `%2e%2e`, `..%2Fadmin` and `..\\x` all count.
    """
    segments = decoded(value).replace("\\", "/").split("/")
    return any(segment in _DOT_SEGMENTS for segment in segments)


def new_http_client(max_connections: int = 100) -> httpx.AsyncClient:
    """The pooled client tools share; close it with `aclose()`."""
    return httpx.AsyncClient(
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=20),
        follow_redirects=False,
    )


def resolve_headers(
    tool: str, headers: Mapping[str, HeaderValue], environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Literal headers as they are, `valueFrom.env` headers read from the environment."""
    env = os.environ if environ is None else environ
    out: dict[str, str] = {}
    for name, value in headers.items():
        if isinstance(value, HeaderFromEnv):
            variable = value.value_from.env
            if variable not in env:
                raise ToolConfigError(
                    f"tool {tool!r}: header {name!r} reads the environment variable "
                    f"{variable!r}, which is not set"
                )
            out[name] = env[variable]
        else:
            out[name] = value
    return out


async def read_capped(tool: str, response: httpx.Response, limit: int) -> bytes:
    """The body, or `ToolResponseTooLargeError` once it passes `limit` bytes."""
    declared = response.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ToolResponseTooLargeError(tool, limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise ToolResponseTooLargeError(tool, limit)
        chunks.append(chunk)
    return b"".join(chunks)


def decode_body(response: httpx.Response, body: bytes) -> Any:
    """JSON when the response says so, else text."""
    if "json" in response.headers.get("content-type", ""):
        return json.loads(body) if body else None
    return body.decode(response.encoding or "utf-8", errors="replace")


async def send(
    tool: str,
    client: httpx.AsyncClient,
    request: httpx.Request,
    *,
    timeout_seconds: float,
    max_bytes: int,
) -> tuple[httpx.Response, bytes]:
    """Send `request`; the response and its (capped) body, errors mapped to `ToolError`s."""
    request.extensions["timeout"] = httpx.Timeout(timeout_seconds).as_dict()
    try:
        response = await client.send(request, stream=True)
        try:
            body = await read_capped(tool, response, max_bytes)
        finally:
            await response.aclose()
    except httpx.TimeoutException:
        raise ToolTimeoutError(tool, timeout_seconds, "request") from None
    except httpx.ConnectError as exc:
        raise ToolConnectError(tool, f"{type(exc).__name__}: {exc}") from None
    except httpx.TransportError as exc:
        raise ToolTransportError(tool, f"{type(exc).__name__}: {exc}") from None
    if response.status_code >= 400:
        raise ToolHttpStatusError(tool, response.status_code, body.decode(errors="replace"))
    return response, body


class HttpTool:
    """The implementation of one `http` tool definition."""

    def __init__(
        self,
        name: str,
        spec: HttpImplementation,
        client: httpx.AsyncClient,
        *,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.spec = spec
        self._client = client
        self._headers = resolve_headers(name, spec.headers, environ)
        self._path_params = set(_URL_PLACEHOLDER.findall(spec.url))
        # Only placeholders before the query string can change which resource is named.
        self._path_segment_params = set(_URL_PLACEHOLDER.findall(spec.url.split("?", 1)[0]))

    def build_request(self, arguments: Mapping[str, Any]) -> httpx.Request:
        """The request for one call (URL placeholders filled and quoted)."""
        missing = self._path_params - set(arguments)
        if missing:
            raise ToolError(self.name, f"missing URL parameters {sorted(missing)}", kind="client")
        for name in sorted(self._path_params):
            try:
                str(arguments[name]).encode()
            except UnicodeEncodeError:  # a lone surrogate: no URL can carry it
                raise ToolArgumentRefusedError(
                    self.name, f"URL parameter {name!r} is not valid Unicode", argument=name
                ) from None
        for name in sorted(self._path_segment_params):
            if changes_path_meaning(str(arguments[name])):
                raise ToolArgumentRefusedError(
                    self.name,
                    f"URL parameter {name!r} would add a '.' or '..' segment to the path "
                    "(after percent-decoding); refused",
                    argument=name,
                )
        url = _URL_PLACEHOLDER.sub(
            lambda m: quote(str(arguments[m.group(1)]), safe=""), self.spec.url
        )
        rest = {k: v for k, v in arguments.items() if k not in self._path_params}
        if self.spec.method in ("GET", "DELETE"):
            params = {k: v if isinstance(v, str) else json.dumps(v) for k, v in rest.items()}
            return self._client.build_request(
                self.spec.method, url, params=params, headers=self._headers
            )
        return self._client.build_request(self.spec.method, url, json=rest, headers=self._headers)

    async def __call__(self, arguments: dict[str, Any], context: CallContext) -> Any:
        response, body = await send(
            self.name,
            self._client,
            self.build_request(arguments),
            timeout_seconds=self.spec.timeout_seconds,
            max_bytes=self.spec.max_response_bytes,
        )
        try:
            return decode_body(response, body)
        except ValueError:  # the dependency said JSON and sent something else
            raise ToolError(self.name, "the response is not valid JSON", kind="server") from None
