"""The HTTPS server of custom.metrics.k8s.io: discovery and each pool's
`agentpool_load_percent`, read from the autoscaler loop's `LoadBoard`.

Every request but the health paths must come from the aggregator's front proxy
(`front_proxy`); metric reads are also authorized for the user it names (`access`).
Errors are Kubernetes Status objects, so that `kubectl get --raw` and the HPA controller
report them as they report the API server's own.

It runs on the leader only: the board is filled by the autoscaler loop, which runs on the
leader only, so a standby would answer 404 for every pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web
from kubernetes import client

from agentpool_operator.autoscaler.board import LoadBoard
from agentpool_operator.autoscaler.metrics_api import documents
from agentpool_operator.autoscaler.metrics_api.access import AccessReviewer, Authorizer, Question
from agentpool_operator.autoscaler.metrics_api.apiservice import (
    ForeignAPIServiceError,
    ServiceRef,
    claim,
)
from agentpool_operator.autoscaler.metrics_api.front_proxy import (
    Caller,
    FrontProxy,
    RefusedError,
    authenticate,
    common_name,
    read_front_proxy,
    server_context,
)
from agentpool_operator.autoscaler.metrics_api.serving_cert import (
    ServingCert,
    make_serving_cert,
    service_dns_names,
)
from agentpool_operator.metrics import METRICS_API_REQUESTS, METRICS_API_SERVING
from agentpool_operator.render.availability import LOAD_METRIC

log = structlog.get_logger(__name__)

STALE_AFTER = 15.0
"""A pool whose load the loop has not read for this long has no value (404): the HPA then
holds the pool's size (FailedGetObjectMetric) rather than act on an old reading."""
RENEW_BEFORE = datetime.timedelta(days=30)
"""A serving certificate (valid a year) is replaced this long before it ends."""
REASONS = {404: "NotFound", 405: "MethodNotAllowed"}
"""aiohttp's own errors, as a Status's reason names them."""
OPEN_PATHS = frozenset({"/healthz", "/livez", "/readyz"})
CALLER = web.RequestKey("caller", Caller)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _status(code: int, reason: str, message: str) -> web.Response:
    return web.json_response(documents.status(code, reason, message), status=code)


class MetricsApi:
    """The aiohttp application, over a board and the cluster's front-proxy settings."""

    def __init__(
        self,
        board: LoadBoard,
        proxy: FrontProxy,
        authorizer: AccessReviewer | None,
        *,
        clock: Callable[[], float] = time.time,
        stale_after: float = STALE_AFTER,
    ) -> None:
        self.board = board
        self.proxy = proxy
        self.authorizer = authorizer
        self.clock = clock
        self.stale_after = stale_after

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._count, self._authenticate])
        app.router.add_get("/healthz", self._ok)
        app.router.add_get("/livez", self._ok)
        app.router.add_get("/readyz", self._ok)
        app.router.add_get("/apis", self._group_list)
        app.router.add_get(f"/apis/{documents.GROUP}", self._group)
        app.router.add_get(f"/apis/{documents.GROUP}/{{version}}", self._resources)
        app.router.add_get(
            f"/apis/{documents.GROUP}/{{version}}/namespaces/{{namespace}}/{{resource}}"
            "/{name}/{metric}",
            self._metric,
        )
        return app

    @web.middleware
    async def _count(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            # aiohttp's own 404/405 for unknown paths, in the Status shape.
            reason = REASONS.get(exc.status, exc.reason.replace(" ", ""))
            response = _status(exc.status, reason, f"{request.method} {request.path}: {exc.reason}")
        METRICS_API_REQUESTS.labels(str(response.status)).inc()
        return response

    @web.middleware
    async def _authenticate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in OPEN_PATHS:
            return await handler(request)
        transport = request.transport
        peercert = transport.get_extra_info("peercert") if transport is not None else None
        try:
            caller = authenticate(self.proxy, common_name(peercert), list(request.headers.items()))
        except RefusedError as exc:
            return _status(exc.code, exc.reason, exc.message)
        request[CALLER] = caller
        return await handler(request)

    async def _ok(self, _: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _group_list(self, _: web.Request) -> web.Response:
        return web.json_response(documents.api_group_list())

    async def _group(self, _: web.Request) -> web.Response:
        return web.json_response(documents.api_group())

    async def _resources(self, request: web.Request) -> web.Response:
        version = request.match_info["version"]
        if version not in documents.VERSIONS:
            return _status(404, "NotFound", f"{documents.GROUP}/{version} is not served")
        return web.json_response(documents.api_resource_list(version))

    async def _metric(self, request: web.Request) -> web.Response:
        found = documents.parse_metric_path(request.path)
        if found is None:
            return _status(
                404,
                "NotFound",
                f"only {documents.POOL_RESOURCE} have metrics here, in versions "
                f"{', '.join(documents.VERSIONS)}",
            )
        if found.metric != LOAD_METRIC:
            return _status(
                404,
                "NotFound",
                f'the server could not find the metric "{found.metric}" for '
                f"{documents.POOL_RESOURCE} (served: {LOAD_METRIC})",
            )
        refused = await self._authorize(request[CALLER], found)
        if refused is not None:
            return refused
        items = self._items(found)
        if found.name != "*" and not items:
            return _status(
                404,
                "NotFound",
                f'the server could not find the metric "{LOAD_METRIC}" for '
                f"{documents.POOL_RESOURCE} {found.namespace}/{found.name}: no load read "
                f"in the last {self.stale_after:g}s",
            )
        return web.json_response(documents.metric_value_list(found.version, items))

    async def _authorize(
        self, caller: Caller, found: documents.MetricRequest
    ) -> web.Response | None:
        if self.authorizer is None:
            return None
        verb = "list" if found.name == "*" else "get"
        question = Question(caller, verb, found.namespace, found.name, found.metric)
        try:
            allowed, reason = await self.authorizer.allowed(question)
        except Exception as exc:  # the API server could not answer: not the caller's fault
            log.warning("access review failed", error=str(exc))
            return _status(503, "ServiceUnavailable", "could not review the caller's access")
        if allowed:
            return None
        return _status(
            403,
            "Forbidden",
            f'{documents.POOL_RESOURCE}.{documents.GROUP} "{found.name}" is forbidden: '
            f'User "{caller.user}" cannot {verb} metric {found.metric} in namespace '
            f'"{found.namespace}"' + (f": {reason}" if reason else ""),
        )

    def _items(self, found: documents.MetricRequest) -> list[dict[str, Any]]:
        now = self.clock()
        if found.name == "*":
            prefix = f"{found.namespace}/"
            pools = self.board.keys()  # a LoadBoard, not a dict: keys() is its listing
            names = [k[len(prefix) :] for k in pools if k.startswith(prefix)]
        else:
            names = [found.name]
        items = []
        for name in names:
            load = self.board.get(f"{found.namespace}/{name}")
            if load is not None and now - load.at <= self.stale_after:
                items.append(documents.metric_value(found.version, found.namespace, name, load))
        return items


class ServingMetricsApi:
    """The running server: its site, and the front-proxy settings kept current.

    The API server's trust controller rewrites extension-apiserver-authentication when
    the front proxy's CA or names change (a CA rotation); the settings are read again
    every `refresh_seconds`, new names and headers apply at once, and a new CA replaces
    the TLS listener (a context's trusted CAs cannot be removed in place)."""

    def __init__(
        self,
        api: MetricsApi,
        cert: ServingCert,
        read: Callable[[], Awaitable[FrontProxy | None]],
        *,
        host: str,
        port: int,
        refresh_seconds: float = 60.0,
        renew: Callable[[], ServingCert] | None = None,
        publish_ca: Callable[[bytes], Awaitable[object]] | None = None,
        renew_before: datetime.timedelta = RENEW_BEFORE,
        cert_dir: Path | None = None,
    ) -> None:
        """`cert_dir`: a directory of the server's own, removed (private key and all)
        by `cleanup`: a leader that loses its lease and wins it again makes a new one."""
        self.api = api
        self._cert_dir = cert_dir
        self.cert = cert
        self._renew = renew
        self._publish_ca = publish_ca
        self._renew_before = renew_before
        self._read = read
        self._host = host
        self._port = port
        self._refresh_seconds = refresh_seconds
        self._runner = web.AppRunner(api.app(), access_log=None)
        self._site: web.TCPSite | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._runner.setup()
        await self._listen()
        self._task = asyncio.create_task(self._refresh_forever(), name="metrics-api-refresh")

    async def _listen(self) -> None:
        context = server_context(self.cert.cert_file, self.cert.key_file, self.api.proxy)
        self._site = web.TCPSite(self._runner, self._host, self._port, ssl_context=context)
        await self._site.start()

    async def refresh(self) -> bool:
        """Read the settings again; True when they changed."""
        proxy = await self._read()
        if proxy is None:
            log.warning("the front proxy settings are gone; keeping the last ones")
            return False
        if proxy == self.api.proxy:
            return False
        new_ca = proxy.client_ca != self.api.proxy.client_ca
        self.api.proxy = proxy
        if new_ca and self._site is not None:
            await self._site.stop()
            await self._listen()
        log.info(
            "front proxy settings changed", new_ca=new_ca, allowed_names=list(proxy.allowed_names)
        )
        return True

    async def renew_cert(self, now: datetime.datetime) -> bool:
        """A new serving certificate when this one ends within `renew_before`: the
        APIService trusts both first (its caBundle may hold several), then the listener
        switches, so that the aggregator never meets a certificate it does not trust."""
        if self._renew is None or self._publish_ca is None:
            return False
        if now < self.cert.not_after - self._renew_before:
            return False
        new = self._renew()
        await self._publish_ca(self.cert.cert_pem + new.cert_pem)
        old, self.cert = self.cert, new
        if self._site is not None:
            await self._site.stop()
            await self._listen()
        for path in (old.cert_file, old.key_file):
            path.unlink(missing_ok=True)
        log.info("serving certificate renewed", not_after=new.not_after.isoformat())
        return True

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_seconds)
            try:
                await self.refresh()
                await self.renew_cert(datetime.datetime.now(datetime.UTC))
            except Exception as exc:  # the API server is away: keep serving, try later
                log.warning("could not refresh the metrics API's settings", error=repr(exc))

    async def cleanup(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._runner.cleanup()
        if self._cert_dir is not None:
            shutil.rmtree(self._cert_dir, ignore_errors=True)


async def serve_metrics_api(
    api_client: client.ApiClient,
    board: LoadBoard,
    *,
    port: int,
    service: ServiceRef,
    owner_cluster_role: str | None = None,
    host: str = "0.0.0.0",  # noqa: S104 - the aggregator dials the pod IP
) -> ServingMetricsApi | None:
    """Serve on `port` and point the APIService at `service`; None (and a logged reason)
    when the cluster has no front proxy or another adapter owns the APIService."""
    proxy = await read_front_proxy(api_client)
    if proxy is None:
        log.error(
            "not serving custom metrics: the API server has no front proxy "
            "(--requestheader-client-ca-file), so no caller could be authenticated"
        )
        METRICS_API_SERVING.set(0)
        return None
    names = service_dns_names(service.name, service.namespace)
    cert_dir = Path(tempfile.mkdtemp(prefix="agentpool-metrics-api-"))
    try:
        cert = make_serving_cert(names, cert_dir)
    except Exception:
        shutil.rmtree(cert_dir, ignore_errors=True)
        raise
    server = ServingMetricsApi(
        MetricsApi(board, proxy, Authorizer(api_client)),
        cert,
        lambda: read_front_proxy(api_client),
        host=host,
        port=port,
        renew=lambda: make_serving_cert(names, cert_dir),
        publish_ca=lambda bundle: claim(api_client, service, bundle, owner_cluster_role),
        cert_dir=cert_dir,
    )
    await server.start()
    try:
        outcome = await claim(api_client, service, cert.cert_pem, owner_cluster_role)
    except ForeignAPIServiceError as exc:
        log.error("not serving custom metrics", reason=str(exc))
        METRICS_API_SERVING.set(0)
        await server.cleanup()
        return None
    except Exception:
        await server.cleanup()
        raise
    METRICS_API_SERVING.set(1)
    log.info(
        "serving custom metrics",
        port=port,
        apiservice=outcome,
        service=f"{service.namespace}/{service.name}:{service.port}",
        allowed_names=list(proxy.allowed_names),
    )
    return server
