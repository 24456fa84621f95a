"""`agentpool-operator`: reconciles AgentPools, cluster-wide or for a list of namespaces,
in the cluster (the chart) or from a kubeconfig."""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Sequence
from dataclasses import dataclass

import kopf
import structlog
from kubernetes import client, config
from prometheus_client import start_http_server

from agent_runtime.logging_config import configure_logging
from agentpool_operator.activator.keeper import SliceKeeper
from agentpool_operator.activator.pools import ClusterPools
from agentpool_operator.activator.server import Activator, ActivatorSettings, serve_activator
from agentpool_operator.activator.wake import WakeRequests
from agentpool_operator.autoscaler.board import LoadBoard
from agentpool_operator.autoscaler.loop import Autoscaler
from agentpool_operator.autoscaler.metrics_api.apiservice import ServiceRef, leader_endpoints
from agentpool_operator.autoscaler.metrics_api.server import ServingMetricsApi, serve_metrics_api
from agentpool_operator.controller.discovery import Discoverer
from agentpool_operator.controller.reconcile import Reconciler
from agentpool_operator.controller.reviewers import ReviewerBinding
from agentpool_operator.controller.tool_status import ToolReconciler
from agentpool_operator.handlers import Controller, IndexView, register
from agentpool_operator.health import Leadership, serve_health
from agentpool_operator.kube import KubeApi
from agentpool_operator.leader import (
    LEASE_NAME,
    LeadershipLostError,
    LeaseElector,
    LeaseTiming,
    lead,
)
from agentpool_operator.metrics import METRICS_API_SERVING
from agentpool_operator.render.config import RenderSettings
from agentpool_operator.settings import OperatorSettings

log = structlog.get_logger(__name__)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="agentpool-operator", description=__doc__)
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "--namespace",
        action="append",
        default=[],
        help="watch only this namespace (repeatable); default: AGENTPOOL_WATCH_NAMESPACES "
        "(comma-separated) or the whole cluster",
    )
    scope.add_argument("--all-namespaces", action="store_true", help="watch the whole cluster")
    parser.add_argument(
        "--standalone",
        action="store_true",
        help="one replica, no leader election (overrides AGENTPOOL_LEADER_ELECT)",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="default: AGENTPOOL_METRICS_PORT or 9090; 0 disables",
    )
    parser.add_argument(
        "--metrics-api-port",
        type=int,
        default=None,
        help="serve custom.metrics.k8s.io (HPA mode) on this port, leader only; "
        "default: AGENTPOOL_METRICS_API_PORT or 0 (off)",
    )
    parser.add_argument(
        "--activator-port",
        type=int,
        default=None,
        help="serve the activator (requests for pools scaled to zero) on this port, leader "
        "only; default: AGENTPOOL_ACTIVATOR_PORT or 0 (off)",
    )
    parser.add_argument(
        "--health-port",
        type=int,
        default=None,
        help="default: AGENTPOOL_HEALTH_PORT or 8080; 0 disables",
    )
    parser.add_argument(
        "--log-level",
        default=os.environ.get("AGENTPOOL_LOG_LEVEL", "info"),
        choices=["debug", "info", "warning", "error"],
        type=str.lower,
    )
    parser.add_argument(
        "--log-format",
        choices=["json", "console"],
        default=None,
        help="default: JSON unless stderr is a terminal",
    )
    return parser.parse_args(argv)


def operator_settings(args: argparse.Namespace, env: dict[str, str]) -> OperatorSettings:
    """The environment's settings with the flags applied over them."""
    settings = OperatorSettings.from_env(env)
    update: dict[str, object] = {}
    if args.all_namespaces:
        update["watch_namespaces"] = ()
    elif args.namespace:
        update["watch_namespaces"] = tuple(args.namespace)
    if args.standalone:
        update["leader_elect"] = False
    if args.metrics_port is not None:
        update["metrics_port"] = args.metrics_port
    if args.metrics_api_port is not None:
        update["metrics_api_port"] = args.metrics_api_port
    if args.health_port is not None:
        update["health_port"] = args.health_port
    if args.activator_port is not None:
        update["activator_port"] = args.activator_port
    return settings.model_copy(update=update)


def api_client() -> client.ApiClient:
    """In the cluster: the pod's ServiceAccount; elsewhere: the kubeconfig."""
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config()  # type: ignore[no-untyped-call]
    return client.ApiClient()


async def run(settings: OperatorSettings, stop: asyncio.Event | None = None) -> None:
    """Reconcile until `stop` is set (or SIGINT/SIGTERM)."""
    kube = KubeApi(api_client(), threads=settings.workers)
    # The autoscaler loop writes each pool's load here; the metrics API serves it.
    board = LoadBoard()
    metrics_api = await _start_metrics_api(settings, board, kube)
    render = RenderSettings(
        default_redis_url=settings.default_redis_url,
        agent_port=settings.agent_port,
        agent_image=settings.agent_image,
        operator_namespace=settings.operator_namespace,
    )
    view = IndexView()
    discoverer = Discoverer(interval=settings.discovery_seconds)
    reconciler = Reconciler(view, kube, render)
    reviewers = None
    if settings.token_reviewer_binding is not None:
        reviewers = ReviewerBinding(settings.token_reviewer_binding, view, reconciler.parsed, kube)
    autoscaler = Autoscaler(view, kube, board=board, default_redis_url=settings.default_redis_url)
    activation = _activation(settings, view, kube, autoscaler)
    loops = [autoscaler.run]
    if activation is not None:
        loops.append(activation.keeper.run)
    controller = Controller(
        reconciler,
        view,
        settings.workers,
        settings.resync_seconds,
        ToolReconciler(view.tool, kube, discoverer),
        reviewers,
        loops=loops,
    )
    discoverer.on_change = controller.tool_queue.add
    if activation is not None:
        activation.pools.indexed = controller.indexed
    registry = kopf.OperatorRegistry()
    register(
        registry,
        controller,
        watch_timeout=settings.watch_timeout_seconds,
        slices=activation.pools.notify if activation is not None else None,
    )
    serving_activator = None
    if activation is not None:
        serving_activator = await serve_activator(activation.activator, settings.activator_port)
    namespaces = list(settings.watch_namespaces)
    log.info(
        "starting",
        namespaces=namespaces or "all",
        agent_image=settings.agent_image,
        default_redis=settings.default_redis_url is not None,
        token_reviewer_binding=settings.token_reviewer_binding or "not managed",
    )
    try:
        await kopf.operator(
            registry=registry,
            clusterwide=not namespaces,
            namespaces=namespaces,
            standalone=True,
            stop_flag=stop,
        )
    finally:
        if serving_activator is not None:
            await serving_activator.cleanup()
        if metrics_api is not None:
            await metrics_api.cleanup()
        kube.close()


@dataclass(frozen=True)
class Activation:
    """The activator's parts: its view of the pools, its server, its slice keeper."""

    pools: ClusterPools
    activator: Activator
    keeper: SliceKeeper


def _activation(
    settings: OperatorSettings, view: IndexView, kube: KubeApi, autoscaler: Autoscaler
) -> Activation | None:
    """The activator, when enabled and it has an address for the pools' slices."""
    if not settings.activator_port:
        return None
    address = settings.activator_address or settings.pod_ip
    if address is None:
        log.error(
            "activator not started: no address for the pools' EndpointSlices "
            "(set AGENTPOOL_ACTIVATOR_ADDRESS or AGENTPOOL_POD_IP)"
        )
        return None
    pools = ClusterPools(view, autoscaler.redis_url)
    activator = Activator(
        pools,
        WakeRequests(),
        ActivatorSettings(
            wait_seconds=settings.activator_wait_seconds,
            max_held=settings.activator_max_held,
            max_body_bytes=settings.activator_max_body_bytes,
            max_held_bytes=64 * settings.activator_max_body_bytes,
            pod_proxy=settings.activator_pod_proxy,
        ),
    )
    keeper = SliceKeeper(view, kube, pools, [str(address)], settings.activator_port)
    log.info("activator on", port=settings.activator_port, address=str(address))
    return Activation(pools, activator, keeper)


async def _start_metrics_api(
    settings: OperatorSettings, board: LoadBoard, kube: KubeApi
) -> ServingMetricsApi | None:
    """custom.metrics.k8s.io when enabled. Started inside `run`, so on the leader only:
    the board is filled by the leader's autoscaler loop, and a standby would serve nothing;
    in the cluster the leader also routes the metrics-API Service to itself."""
    if not settings.metrics_api_port:
        METRICS_API_SERVING.set(0)
        return None
    service = ServiceRef(
        settings.operator_namespace, settings.metrics_api_service, settings.metrics_api_service_port
    )
    runner = None
    try:
        runner = await serve_metrics_api(
            api_client(),
            board,
            port=settings.metrics_api_port,
            service=service,
            owner_cluster_role=settings.metrics_api_owner,
        )
        if runner is not None and settings.pod_ip:
            endpoints = leader_endpoints(service, str(settings.pod_ip), settings.metrics_api_port)
            await kube.apply(endpoints)
    except Exception as exc:
        # An optional feature: the pools keep being reconciled and autoscaled without it
        # (a missing RBAC rule, say); the HPAs of mode HPA report FailedGetObjectMetric.
        log.error("not serving custom metrics: could not start", error=repr(exc))
        METRICS_API_SERVING.set(0)
        if runner is not None:
            await runner.cleanup()
        return None
    return runner


async def serve(settings: OperatorSettings) -> None:
    """The whole process: /healthz, then either the operator alone, or leader election
    around it (a standby waits for the Lease; a leader that loses it exits, and its pod
    restarts as a standby)."""
    health = await serve_health(settings.health_port) if settings.health_port else None
    try:
        if not settings.leader_elect:
            Leadership.set(True)
            await run(settings)
            return
        elector = LeaseElector(
            api_client(),
            namespace=settings.operator_namespace,
            name=LEASE_NAME,
            identity=settings.pod_name,
            timing=LeaseTiming(
                lease_duration=settings.lease_duration_seconds,
                renew_deadline=settings.lease_renew_deadline_seconds,
                retry_period=settings.lease_retry_seconds,
            ),
        )
        log.info("waiting for the Lease", lease=f"{settings.operator_namespace}/{LEASE_NAME}")

        async def leading(stop: asyncio.Event) -> None:
            Leadership.set(True)
            log.info("leading", identity=settings.pod_name)
            try:
                await run(settings, stop)
            finally:
                Leadership.set(False)

        await lead(elector, leading)
    finally:
        if health is not None:
            await health.cleanup()


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    configure_logging(args.log_level, args.log_format)
    settings = operator_settings(args, dict(os.environ))
    if settings.metrics_port:
        start_http_server(settings.metrics_port)
    try:
        asyncio.run(serve(settings))
    except LeadershipLostError as exc:
        log.error(
            "lost the Lease: exiting so that this replica restarts as a standby", error=str(exc)
        )
        raise SystemExit(1) from exc
