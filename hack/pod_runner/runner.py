"""The pod runner: the kubelet's and kube-proxy's parts for agent pods, on this machine.

It watches the pods of AgentPools (a label selector, some namespaces or all); for every
pod the cluster reports Running it starts an `AgentProcess`, and stops it (drain, then
SIGTERM) once the pod is deleting or gone. Each pool gets a `PoolFront`: one local port
spreading requests over its ready processes. Level-triggered: the watch only marks the
state dirty, and one reconcile brings the processes to what the pods say.

    runner = PodRunner(RunnerSettings(kubeconfig=path, namespaces=("shop",)))
    await runner.start()
    runner.front_url("shop", "support")     # http://127.0.0.1:PORT
    runner.status().pool("shop", "support").serving
    await runner.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from kubernetes import client, config, watch
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from hack.pod_runner.fork_server import ForkServer
from hack.pod_runner.front import PodNetwork, PoolFront, bind, serve
from hack.pod_runner.image import WorkingContainer
from hack.pod_runner.plan import DEFAULT_SELECTOR, is_wanted, plan_pod
from hack.pod_runner.process import AgentProcess
from hack.pod_runner.status import PodProcess, PoolFrontStatus, RunnerStatus
from hack.pod_runner.volumes import ClusterSources

log = structlog.get_logger(__name__)

GROUP, VERSION = "agentpool.dev", "v1alpha1"
API_SERVER_NAMES = frozenset(
    {"kubernetes", "kubernetes.default", "kubernetes.default.svc"}
    | {"kubernetes.default.svc.cluster.local"}
)
WATCH_SECONDS = 60
ACTIVATOR_SLICES = "endpointslice.kubernetes.io/managed-by=activator.agentpool.dev"
"""The operator's activator EndpointSlices (operator/agentpool_operator/activator)."""
STATUS_FILE_PERIOD = 0.25

PoolKey = tuple[str, str]


@dataclass(frozen=True)
class RunnerSettings:
    """What to run and where."""

    kubeconfig: Path | None = None
    """None: the default kubeconfig (KUBECONFIG, ~/.kube/config)."""
    namespaces: tuple[str, ...] = ()
    """The namespaces to watch; empty: every namespace."""
    label_selector: str = DEFAULT_SELECTOR
    workdir: Path | None = None
    """Pods' files and logs (`pods/`, `logs/`); None: a new temporary directory."""
    front_ports: Mapping[PoolKey, int] = field(default_factory=dict)
    """Fixed front ports by (namespace, pool); others get a free port."""
    aliases: Mapping[str, str] = field(default_factory=dict)
    """Cluster "host:port" -> local "host:port" (e.g. a Redis Service -> a local redis)."""
    pending_timeout: float = 10.0
    """How long a request waits at a front with no ready process before a 503."""
    status_port: int | None = 0
    """The status endpoint's port (0: a free one; None: no endpoint)."""
    status_file: Path | None = None
    """Where to keep the status as JSON (rewritten on change); None: nowhere."""
    drain_on_stop: bool = False
    """When the runner itself stops: drain each process (preStop) or just SIGTERM it."""
    fork_server: bool = False
    """Fork each pod's process from one that has imported the runtime (warm starts:
    hack/pod_runner/fork_server.py) instead of starting it cold."""
    image: str | None = None
    """Image mode: run each pod's agent container in this image with `buildah run`
    (hack/pod_runner/image.py) instead of a process of the checkout."""
    pod_network_port: int | None = None
    """The pod network's port (front.PodNetwork: an HTTP proxy to the pods by pod IP,
    for the operator's activator); None: none, 0: a free one."""

    def __post_init__(self) -> None:
        if self.image is not None and self.fork_server:
            raise ValueError("image mode runs the image's own runtime: no fork server")


def _svc_parts(host: str) -> tuple[str, str] | None:
    """(name, namespace) of a Service DNS name `NAME.NS.svc[.cluster.local]`."""
    for suffix in (".svc.cluster.local", ".svc"):
        if host.endswith(suffix):
            parts = host.removesuffix(suffix).split(".")
            if len(parts) == 2:
                return parts[0], parts[1]
    return None


class PodRunner:
    """Runs a process for every Running agent pod and a front for every pool."""

    def __init__(self, settings: RunnerSettings, api: client.ApiClient | None = None) -> None:
        self.settings = settings
        self.api = api or config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(settings.kubeconfig) if settings.kubeconfig else None
        )
        self.workdir = settings.workdir or Path(tempfile.mkdtemp(prefix="agentpool-pods-"))
        # The pods' files (Secrets, tokens): private, short paths, removed with the runner.
        self.roots = Path(tempfile.mkdtemp(prefix="agentpool-pods-"))
        self.sources = ClusterSources(self.api)
        self.fronts: dict[PoolKey, PoolFront] = {}
        self.processes: dict[str, AgentProcess] = {}
        """By pod uid; a process stays here until it has stopped."""
        self.status_url: str | None = None
        self._pods: dict[str, Mapping[str, Any]] = {}
        self._pools: dict[PoolKey, bool] = {}
        self._lock = threading.Lock()
        self._dirty = asyncio.Event()
        self._closing = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping: set[asyncio.Task[None]] = set()
        self._status_server: Any = None
        self._fork_server: ForkServer | None = None
        self._container: WorkingContainer | None = None
        self.pod_network: PodNetwork | None = None
        self._activator_slices: dict[str, tuple[PoolKey, str]] = {}
        """By slice uid: its pool and its activator's local URL."""

    # ------------------------------------------------------------------ the public API

    async def start(self) -> None:
        """Start watching and serving; returns once the status endpoint answers."""
        self._loop = asyncio.get_running_loop()
        self._dirty = asyncio.Event()
        if self.settings.fork_server:
            self._fork_server = ForkServer()
            await self._fork_server.start()
        if self.settings.image is not None:
            self._container = await WorkingContainer.create(self.settings.image)
        for key, port in self.settings.front_ports.items():
            self._front(*key, port=port)
        if self.settings.pod_network_port is not None:
            self.pod_network = PodNetwork(self._pod_by_ip, port=self.settings.pod_network_port)
            await self.pod_network.start()
        for namespace in self.settings.namespaces or (None,):
            threading.Thread(
                target=self._watch, args=(namespace,), name=f"watch {namespace}", daemon=True
            ).start()
            threading.Thread(
                target=self._watch_slices,
                args=(namespace,),
                name=f"watch slices {namespace}",
                daemon=True,
            ).start()
        self._tasks.append(asyncio.create_task(self._reconcile_loop()))
        if self.settings.status_file is not None:
            self._tasks.append(asyncio.create_task(self._status_file_loop()))
        if self.settings.status_port is not None:
            sock = bind("127.0.0.1", self.settings.status_port)
            self.status_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
            routes = [
                Route("/status", self._status_route),
                Route("/fronts/{namespace}/{pool}", self._front_route),
                Route("/healthz", _ok),
            ]
            app = Starlette(routes=routes)
            self._status_server = await serve(app, sock)
        log.info("pod runner started", workdir=str(self.workdir), status=self.status_url)

    async def stop(self) -> None:
        """Stop every process (drained if `drain_on_stop`), every front, the endpoint."""
        self._closing.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        drain = self.settings.drain_on_stop
        await asyncio.gather(*(p.stop(drain=drain) for p in list(self.processes.values())))
        await asyncio.gather(*(f.stop() for f in self.fronts.values()))
        if self.pod_network is not None:
            await self.pod_network.stop()
        if self._fork_server is not None:
            await self._fork_server.stop()
        if self._container is not None:
            await self._container.remove()
        if self._status_server is not None:
            server, task = self._status_server
            server.should_exit = True
            await task
        shutil.rmtree(self.roots, ignore_errors=True)
        log.info("pod runner stopped")

    def front_url(self, namespace: str, pool: str) -> str:
        """The pool's front (created now if the runner has not seen the pool yet)."""
        return self._front(namespace, pool).url

    def status(self) -> RunnerStatus:
        pools = []
        for (namespace, pool), front in sorted(self.fronts.items()):
            pods = [
                _pod_status(p)
                for p in self.processes.values()
                if (p.plan.namespace, p.plan.pool) == (namespace, pool)
            ]
            pools.append(
                PoolFrontStatus(
                    namespace=namespace,
                    pool=pool,
                    url=front.url,
                    waiting=front.waiting,
                    activator=front.activator,
                    to_activator=front.to_activator,
                    pods=sorted(pods, key=lambda p: p.pod),
                )
            )
        container = self._container
        return RunnerStatus(
            pools=pools,
            image=self.settings.image,
            container=container.name if container is not None else None,
        )

    # ------------------------------------------------------------------ fronts and names

    def _front(self, namespace: str, pool: str, port: int | None = None) -> PoolFront:
        """The pool's front, bound now and served from the loop (callable from any thread)."""
        with self._lock:
            found = self.fronts.get((namespace, pool))
            if found is not None:
                return found
            fixed = port if port is not None else self.settings.front_ports.get((namespace, pool))
            front = PoolFront(
                namespace, pool, port=fixed or 0, pending_timeout=self.settings.pending_timeout
            )
            front.bind()
            self.fronts[(namespace, pool)] = front
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._serve_front, front)
        return front

    def _serve_front(self, front: PoolFront) -> None:
        if not self._closing.is_set():
            self._tasks.append(asyncio.create_task(front.start()))

    def _is_pool(self, namespace: str, name: str) -> bool:
        """Whether an AgentPool of that name exists (its Service has its name); blocking."""
        key = (namespace, name)
        if key in self.fronts:
            return True
        if key not in self._pools:
            custom = client.CustomObjectsApi(self.api)
            try:
                custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "agentpools", name)
                self._pools[key] = True
            except client.ApiException as exc:
                if exc.status != 404:
                    raise
                return False  # not cached: the pool may be created later
        return True

    def resolve(self, host: str, port: int) -> str | None:
        """Cluster host:port -> this machine's (blocking: may ask the API server)."""
        alias = self.settings.aliases.get(f"{host}:{port}")
        if alias is not None:
            return alias
        if host in API_SERVER_NAMES and port == 443:
            return str(self.api.configuration.host).split("://", 1)[1]
        service = _svc_parts(host)
        if service is not None and self._is_pool(service[1], service[0]):
            return f"127.0.0.1:{self._front(service[1], service[0]).port}"
        return None

    # ------------------------------------------------------------------ watching pods

    def _post(self, kind: str, payload: Any) -> None:
        if self._loop is not None and not self._closing.is_set():
            self._loop.call_soon_threadsafe(self._apply, kind, payload)

    def _apply(self, kind: str, payload: Any) -> None:
        if kind == "SYNC":
            namespace, items = payload
            self._pods = {
                uid: pod
                for uid, pod in self._pods.items()
                if namespace is not None and pod["metadata"].get("namespace") != namespace
            }
            self._pods.update({p["metadata"]["uid"]: p for p in items})
        elif kind == "DELETED":
            self._pods.pop(payload["metadata"]["uid"], None)
        else:
            self._pods[payload["metadata"]["uid"]] = payload
        self._dirty.set()

    def _watch(self, namespace: str | None) -> None:
        """The agent pods (runs in a thread)."""
        core = client.CoreV1Api(self.api)
        listers = (core.list_pod_for_all_namespaces, core.list_namespaced_pod)
        self._list_and_watch(namespace, listers, self.settings.label_selector, self._post, "pod")

    # ------------------------------------------------------------------ activator slices

    def _watch_slices(self, namespace: str | None) -> None:
        """The activator EndpointSlices (runs in a thread)."""
        discovery = client.DiscoveryV1Api(self.api)
        listers = (
            discovery.list_endpoint_slice_for_all_namespaces,
            discovery.list_namespaced_endpoint_slice,
        )
        self._list_and_watch(namespace, listers, ACTIVATOR_SLICES, self._post_slices, "slice")

    def _list_and_watch(
        self,
        namespace: str | None,
        listers: tuple[Any, Any],
        selector: str,
        post: Any,
        what: str,
    ) -> None:
        """List then watch (all namespaces, or one), relisting on any error or expiry;
        `post` gets ("SYNC", (namespace, items)) after each list, then each event."""
        while not self._closing.is_set():
            try:
                # Raw JSON: the objects as the API server wrote them (what plan_pod reads).
                kwargs: dict[str, Any] = {"label_selector": selector}
                if namespace is None:
                    lister: Any = listers[0]
                    args: tuple[str, ...] = ()
                else:
                    lister, args = listers[1], (namespace,)
                listed = json.loads(lister(*args, _preload_content=False, **kwargs).data)
                post("SYNC", (namespace, listed.get("items") or []))
                stream = watch.Watch().stream(  # type: ignore[no-untyped-call]
                    lister,
                    *args,
                    resource_version=listed["metadata"]["resourceVersion"],
                    timeout_seconds=WATCH_SECONDS,
                    **kwargs,
                )
                for event in stream:
                    if self._closing.is_set():
                        return
                    if event["type"] == "ERROR":
                        break
                    post(event["type"], event["raw_object"])
            except Exception as exc:
                if self._closing.is_set():
                    return
                log.warning(f"{what} watch failed; relisting", namespace=namespace, error=str(exc))
                self._closing.wait(1.0)

    def _post_slices(self, kind: str, payload: Any) -> None:
        if self._loop is not None and not self._closing.is_set():
            self._loop.call_soon_threadsafe(self._apply_slices, kind, payload)

    def _apply_slices(self, kind: str, payload: Any) -> None:
        if kind == "SYNC":
            namespace, items = payload
            self._activator_slices = {
                uid: entry
                for uid, entry in self._activator_slices.items()
                if namespace is not None and entry[0][0] != namespace
            }
            for item in items:
                self._add_slice(item)
        elif kind == "DELETED":
            self._activator_slices.pop(payload["metadata"]["uid"], None)
        else:
            self._add_slice(payload)
        routed: dict[PoolKey, str] = {}
        for key, url in self._activator_slices.values():
            routed[key] = url
        for key in set(routed) | {k for k, f in self.fronts.items() if f.activator}:
            front = self._front(*key)
            if front.activator != routed.get(key):
                front.activator = routed.get(key)
                log.info("pool's Service routes to the activator", pool=key, url=front.activator)
                front.changed()

    def _add_slice(self, body: Mapping[str, Any]) -> None:
        """kube-proxy's reading of an activator slice: its first ready endpoint on the
        Service's port, mapped to this machine through the aliases."""
        meta = body["metadata"]
        service = (meta.get("labels") or {}).get("kubernetes.io/service-name")
        port = next((p.get("port") for p in body.get("ports") or [] if p.get("port")), None)
        address = next(
            (
                e["addresses"][0]
                for e in body.get("endpoints") or []
                if e.get("addresses") and (e.get("conditions") or {}).get("ready") is not False
            ),
            None,
        )
        if not service or port is None or address is None or meta.get("deletionTimestamp"):
            self._activator_slices.pop(meta["uid"], None)
            return
        where = self.settings.aliases.get(f"{address}:{port}", f"{address}:{port}")
        self._activator_slices[meta["uid"]] = ((meta["namespace"], service), f"http://{where}")

    def _pod_by_ip(self, ip: str) -> tuple[PoolFront, str] | None:
        """The front and pod name of the Running pod with IP `ip` that has a process."""
        for uid, process in self.processes.items():
            pod = self._pods.get(uid) or {}
            if (pod.get("status") or {}).get("podIP") == ip and not process.stopping:
                return self._front(process.plan.namespace, process.plan.pool), process.plan.name
        return None

    # ------------------------------------------------------------------ reconciling

    async def _reconcile_loop(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            self._reconcile()

    def _reconcile(self) -> None:
        wanted = {uid: pod for uid, pod in self._pods.items() if is_wanted(pod)}
        for uid, pod in wanted.items():
            if uid in self.processes:
                continue
            plan = plan_pod(pod)
            if plan is None:
                continue
            front = self._front(plan.namespace, plan.pool)
            process = AgentProcess(
                plan,
                self.workdir,
                self.roots,
                front,
                self.sources,
                self.resolve,
                fork_server=self._fork_server,
                container=self._container,
            )
            self.processes[uid] = process
            process.start()
            log.info("pod running: starting its process", pod=plan.name, pool=plan.pool)
        for uid, process in list(self.processes.items()):
            if uid not in wanted and not process.stopping:
                log.info("pod gone: stopping its process", pod=process.plan.name)
                task = asyncio.create_task(self._stop_process(uid, process))
                self._stopping.add(task)
                task.add_done_callback(self._stopping.discard)

    async def _stop_process(self, uid: str, process: AgentProcess) -> None:
        await process.stop(drain=True)
        self.processes.pop(uid, None)

    # ------------------------------------------------------------------ reporting

    async def _status_route(self, request: Request) -> JSONResponse:
        return JSONResponse(self.status().model_dump(mode="json", by_alias=True))

    async def _front_route(self, request: Request) -> JSONResponse:
        namespace, pool = request.path_params["namespace"], request.path_params["pool"]
        return JSONResponse({"url": self.front_url(namespace, pool)})

    async def _status_file_loop(self) -> None:
        assert self.settings.status_file is not None
        path = self.settings.status_file
        last = ""
        while True:
            text = self.status().model_dump_json(by_alias=True, indent=2)
            if text != last:
                tmp = path.with_name(f".{path.name}.tmp")
                tmp.write_text(text)
                tmp.replace(path)
                last = text
            await asyncio.sleep(STATUS_FILE_PERIOD)


async def _ok(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


def _pod_status(process: AgentProcess) -> PodProcess:
    backend = process.backend
    ready = bool(backend and backend.ready)
    draining = process.stopping
    if process.error is not None:
        state = "failed"
    elif draining:
        state = "draining"
    elif ready:
        state = "ready"
    elif process.restarts:
        state = "crash-loop"
    elif process.ready_at is None:
        state = "starting"
    else:
        state = "unready"
    proc = process.proc
    return PodProcess(
        pod=process.plan.name,
        uid=process.plan.uid,
        port=process.port,
        url=f"http://127.0.0.1:{process.port}",
        pid=proc.pid if proc is not None and proc.returncode is None else None,
        state=state,
        ready=ready,
        draining=draining,
        inflight=backend.inflight if backend else 0,
        served=backend.served if backend else 0,
        restarts=process.restarts,
        last_exit=process.last_exit,
        seen_running_at=process.seen_running_at,
        ready_at=process.ready_at,
        log=str(process.log_path),
        error=process.error,
    )
