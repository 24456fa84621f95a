"""The custom-metrics API (HPA mode): its documents, the front-proxy authentication, the
APIService ownership rule, and the server over real TLS with a board the test fills."""

from __future__ import annotations

import datetime
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from agentpool_operator.autoscaler.board import LoadBoard, PoolLoad
from agentpool_operator.autoscaler.metrics_api import apiservice, documents
from agentpool_operator.autoscaler.metrics_api.access import Question, review_body
from agentpool_operator.autoscaler.metrics_api.front_proxy import (
    Caller,
    FrontProxy,
    RefusedError,
    authenticate,
    common_name,
    server_context,
)
from agentpool_operator.autoscaler.metrics_api.server import MetricsApi, ServingMetricsApi
from agentpool_operator.autoscaler.metrics_api.serving_cert import (
    make_serving_cert,
    service_dns_names,
)
from agentpool_operator.main import operator_settings, parse_args
from agentpool_operator.settings import OperatorSettings
from tests.support.pki import CertAuthority, Issued

BASE = "/apis/custom.metrics.k8s.io"
POOL_PATH = (
    f"{BASE}/v1beta2/namespaces/team/agentpools.agentpool.dev/support/agentpool_load_percent"
)
CONFIGMAP = {
    "requestheader-allowed-names": '["front-proxy-client"]',
    "requestheader-username-headers": '["X-Remote-User"]',
    "requestheader-group-headers": '["X-Remote-Group"]',
    "requestheader-extra-headers-prefix": '["X-Remote-Extra-"]',
}

dns_labels = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?", fullmatch=True)


# -- documents ---------------------------------------------------------------------------


@given(st.sampled_from(documents.VERSIONS), dns_labels, dns_labels, dns_labels)
def test_a_pool_metric_path_parses_back_to_its_parts(
    version: str, namespace: str, name: str, metric: str
) -> None:
    path = f"{BASE}/{version}/namespaces/{namespace}/agentpools.agentpool.dev/{name}/{metric}"
    assert documents.parse_metric_path(path) == documents.MetricRequest(
        version, namespace, name, metric
    )


@pytest.mark.parametrize(
    "path",
    [
        f"{BASE}/v1beta2/namespaces/team/pods/p/agentpool_load_percent",
        f"{BASE}/v2/namespaces/team/agentpools.agentpool.dev/p/agentpool_load_percent",
        f"{BASE}/v1beta2/namespaces/team/agentpools.agentpool.dev/p",
        f"{BASE}/v1beta2/agentpools.agentpool.dev/p/agentpool_load_percent/x/y",
        "/apis/external.metrics.k8s.io/v1beta1/namespaces/team/x/y/z",
    ],
)
def test_other_paths_are_not_pool_metrics(path: str) -> None:
    assert documents.parse_metric_path(path) is None


def test_a_value_names_the_pool_and_is_a_quantity_in_both_versions() -> None:
    load = PoolLoad(demand=6, load_percent=75, ready=2, at=1_700_000_000.0)
    v2 = documents.metric_value("v1beta2", "team", "support", load)
    assert v2["describedObject"] == {
        "kind": "AgentPool",
        "namespace": "team",
        "name": "support",
        "apiVersion": "agentpool.dev/v1alpha1",
    }
    assert v2["metric"] == {"name": "agentpool_load_percent"}
    assert v2["value"] == "75"
    assert v2["timestamp"] == "2023-11-14T22:13:20Z"
    assert v2["windowSeconds"] == 1
    v1 = documents.metric_value("v1beta1", "team", "support", load)
    assert v1["metricName"] == "agentpool_load_percent"
    assert "metric" not in v1


# -- front proxy ----------------------------------------------------------------------------


def test_the_configmap_without_a_request_header_ca_means_no_front_proxy() -> None:
    assert FrontProxy.from_configmap({"client-ca-file": "x"}) is None


def test_the_configmap_gives_the_names_and_headers() -> None:
    proxy = FrontProxy.from_configmap({**CONFIGMAP, "requestheader-client-ca-file": "PEM"})
    assert proxy == FrontProxy("PEM", ("front-proxy-client",))


def proxy_with_names(*names: str) -> FrontProxy:
    return FrontProxy("PEM", names)


def test_a_caller_without_a_certificate_is_refused() -> None:
    with pytest.raises(RefusedError) as refused:
        authenticate(proxy_with_names(), None, [("X-Remote-User", "admin")])
    assert refused.value.code == 401


def test_a_certificate_not_in_the_allowed_names_is_refused() -> None:
    with pytest.raises(RefusedError) as refused:
        authenticate(proxy_with_names("front-proxy-client"), "someone", [("X-Remote-User", "a")])
    assert refused.value.code == 401


def test_the_front_proxy_must_name_a_user() -> None:
    with pytest.raises(RefusedError):
        authenticate(proxy_with_names(), "front-proxy-client", [("X-Remote-Group", "g")])


def test_the_headers_name_user_groups_and_extra_case_insensitively() -> None:
    caller = authenticate(
        proxy_with_names("front-proxy-client"),
        "front-proxy-client",
        [
            ("x-remote-user", "system:serviceaccount:kube-system:hpa"),
            ("X-Remote-Group", "system:serviceaccounts"),
            ("x-remote-group", "system:authenticated"),
            ("X-Remote-Extra-Scopes%2fA", "one"),
            ("X-Other", "ignored"),
        ],
    )
    assert caller == Caller(
        "system:serviceaccount:kube-system:hpa",
        ("system:serviceaccounts", "system:authenticated"),
        {"scopes/a": ("one",)},
    )


def test_the_common_name_comes_from_the_subject() -> None:
    peer = {"subject": ((("organizationName", "system:masters"),), (("commonName", "kwok-admin"),))}
    assert common_name(peer) == "kwok-admin"
    assert common_name(None) is None
    assert common_name({}) is None


def test_the_access_review_asks_about_the_pool_metric() -> None:
    question = Question(Caller("u", ("g",), {"k": ("v",)}), "get", "team", "support", "m")
    body = review_body(question)
    assert body["spec"] == {
        "user": "u",
        "groups": ["g"],
        "extra": {"k": ["v"]},
        "resourceAttributes": {
            "verb": "get",
            "group": "custom.metrics.k8s.io",
            "resource": "agentpools.agentpool.dev",
            "subresource": "m",
            "namespace": "team",
            "name": "support",
        },
    }


# -- the APIService -------------------------------------------------------------------------


def test_an_apiservice_is_ours_only_with_our_managed_by_label() -> None:
    ours = apiservice.desired(apiservice.ServiceRef("agentpool-system", "svc", 443), b"CA")
    assert apiservice.owner(None) == "absent"
    assert apiservice.owner(ours) == "ours"
    adapter = {
        "metadata": {"name": apiservice.NAME, "labels": {"app.kubernetes.io/managed-by": "Helm"}},
        "spec": {"service": {"namespace": "monitoring", "name": "prometheus-adapter"}},
    }
    assert apiservice.owner(adapter) == "foreign"
    assert apiservice.owner({"metadata": {"name": apiservice.NAME}}) == "foreign"
    assert "monitoring/prometheus-adapter" in apiservice.describe(adapter)
    assert ours["spec"]["caBundle"] == "Q0E="
    assert ours["spec"]["service"] == {"namespace": "agentpool-system", "name": "svc", "port": 443}


# -- the server over TLS ------------------------------------------------------------------


class Reviewer:
    """Allows everyone but the user "mallory"."""

    def __init__(self) -> None:
        self.questions: list[Question] = []

    async def allowed(self, question: Question) -> tuple[bool, str]:
        self.questions.append(question)
        return question.caller.user != "mallory", "test"


@dataclass
class Served:
    url: str
    board: LoadBoard
    front_proxy: Issued
    stranger_same_ca: Issued
    stranger_other_ca: Issued
    serving_ca: Path
    reviewer: Reviewer
    now: list[float]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    ca = CertAuthority.create(tmp_path / "ca")
    other = CertAuthority.create(tmp_path / "other", "other-ca")
    proxy = FrontProxy.from_configmap({**CONFIGMAP, "requestheader-client-ca-file": ca.pem})
    assert proxy is not None
    cert_dir = tmp_path / "serving"
    cert_dir.mkdir()
    cert = make_serving_cert(service_dns_names("svc", "agentpool-system"), cert_dir)
    board = LoadBoard()
    now = [1_700_000_000.0]
    reviewer = Reviewer()
    app = MetricsApi(board, proxy, reviewer, clock=lambda: now[0]).app()
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = _free_port()
    context = server_context(cert.cert_file, cert.key_file, proxy)
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=context).start()
    try:
        yield Served(
            f"https://127.0.0.1:{port}",
            board,
            ca.client("front-proxy-client"),
            ca.client("kwok-admin", "system:masters"),
            other.client("front-proxy-client"),
            cert.cert_file,
            reviewer,
            now,
        )
    finally:
        await runner.cleanup()


def client_for(served: Served, identity: Issued | None) -> httpx.AsyncClient:
    context = ssl.create_default_context(cafile=str(served.serving_ca))
    context.check_hostname = False  # the certificate names the Service, we dial 127.0.0.1
    if identity is not None:
        context.load_cert_chain(identity.cert_file, identity.key_file)
    return httpx.AsyncClient(base_url=served.url, verify=context, timeout=5)


AS_HPA = {
    "X-Remote-User": "system:kube-controller-manager",
    "X-Remote-Group": "system:authenticated",
}


async def test_discovery_lists_the_pool_metric(served: Served) -> None:
    async with client_for(served, served.front_proxy) as http:
        resources = (await http.get(f"{BASE}/v1beta2", headers=AS_HPA)).json()
        group = (await http.get(BASE, headers=AS_HPA)).json()
        groups = (await http.get("/apis", headers=AS_HPA)).json()
    assert resources["groupVersion"] == "custom.metrics.k8s.io/v1beta2"
    assert [r["name"] for r in resources["resources"]] == [
        "agentpools.agentpool.dev/agentpool_load_percent"
    ]
    assert group["preferredVersion"]["version"] == "v1beta2"
    assert groups["groups"][0]["name"] == "custom.metrics.k8s.io"


async def test_the_pool_load_is_served_from_the_board(served: Served) -> None:
    served.board.put("team/support", PoolLoad(6, 150, 1, served.now[0] - 1))
    async with client_for(served, served.front_proxy) as http:
        answer = await http.get(POOL_PATH, headers=AS_HPA)
        every = await http.get(POOL_PATH.replace("/support/", "/*/"), headers=AS_HPA)
    assert answer.status_code == 200
    body = answer.json()
    assert body["kind"] == "MetricValueList"
    assert [(i["describedObject"]["name"], i["value"]) for i in body["items"]] == [
        ("support", "150")
    ]
    assert [i["describedObject"]["name"] for i in every.json()["items"]] == ["support"]
    assert served.reviewer.questions[0] == Question(
        Caller("system:kube-controller-manager", ("system:authenticated",)),
        "get",
        "team",
        "support",
        "agentpool_load_percent",
    )


async def test_unknown_pools_stale_loads_and_other_metrics_are_404_statuses(
    served: Served,
) -> None:
    served.board.put("team/support", PoolLoad(6, 150, 1, served.now[0] - 60))
    async with client_for(served, served.front_proxy) as http:
        stale = await http.get(POOL_PATH, headers=AS_HPA)
        unknown = await http.get(POOL_PATH.replace("/support/", "/nope/"), headers=AS_HPA)
        metric = await http.get(POOL_PATH.replace("agentpool_load_percent", "cpu"), headers=AS_HPA)
        pods = await http.get(POOL_PATH.replace("agentpools.agentpool.dev", "pods"), headers=AS_HPA)
        version = await http.get(f"{BASE}/v9", headers=AS_HPA)
        elsewhere = await http.get("/api/v1/secrets", headers=AS_HPA)
    for answer in (stale, unknown, metric, pods, version, elsewhere):
        assert answer.status_code == 404, answer.text
        assert answer.json()["kind"] == "Status"
        assert answer.json()["reason"] == "NotFound", answer.url
    assert "no load read" in stale.json()["message"]


async def test_a_caller_without_the_front_proxy_certificate_gets_401(served: Served) -> None:
    served.board.put("team/support", PoolLoad(6, 150, 1, served.now[0]))
    async with client_for(served, None) as http:
        anonymous = await http.get(POOL_PATH, headers=AS_HPA)
    async with client_for(served, served.stranger_same_ca) as http:
        wrong_name = await http.get(POOL_PATH, headers=AS_HPA)
    async with client_for(served, served.front_proxy) as http:
        no_user = await http.get(POOL_PATH)
    for answer in (anonymous, wrong_name, no_user):
        assert answer.status_code == 401
        assert answer.json()["reason"] == "Unauthorized"
    assert served.reviewer.questions == []


async def test_a_certificate_of_another_ca_fails_the_handshake(served: Served) -> None:
    async with client_for(served, served.stranger_other_ca) as http:
        with pytest.raises(httpx.HTTPError):
            await http.get(POOL_PATH, headers=AS_HPA)


async def test_a_user_the_api_server_does_not_allow_gets_403(served: Served) -> None:
    served.board.put("team/support", PoolLoad(6, 150, 1, served.now[0]))
    async with client_for(served, served.front_proxy) as http:
        answer = await http.get(POOL_PATH, headers={"X-Remote-User": "mallory"})
    assert answer.status_code == 403
    assert answer.json()["reason"] == "Forbidden"


# -- settings and routing -------------------------------------------------------------------


def test_the_metrics_api_is_off_unless_asked_for_by_flag_or_environment() -> None:
    assert operator_settings(parse_args([]), {}).metrics_api_port == 0
    env = {"AGENTPOOL_METRICS_API_PORT": "6443", "AGENTPOOL_POD_IP": "10.1.2.3"}
    settings = operator_settings(parse_args([]), env)
    assert settings.metrics_api_port == 6443
    assert str(settings.pod_ip) == "10.1.2.3"
    assert operator_settings(parse_args(["--metrics-api-port=7443"]), env).metrics_api_port == 7443


def test_a_pod_ip_that_is_no_ip_is_refused() -> None:
    with pytest.raises(ValidationError):
        OperatorSettings.from_env({"AGENTPOOL_POD_IP": "operator-0"})


@pytest.mark.parametrize(("ip", "family"), [("10.1.2.3", "IPv4"), ("fd00::7", "IPv6")])
def test_the_leader_s_endpoint_slice_routes_the_service_to_it(ip: str, family: str) -> None:
    service = apiservice.ServiceRef("agentpool-system", "rel-agentpool-metrics-api", 443)
    slice_ = apiservice.leader_endpoints(service, ip, 6443)
    assert slice_["metadata"]["labels"]["kubernetes.io/service-name"] == service.name
    assert slice_["metadata"]["namespace"] == "agentpool-system"
    assert slice_["addressType"] == family
    assert slice_["endpoints"] == [{"addresses": [ip], "conditions": {"ready": True}}]
    # Matched to the Service's port by name; the number is the pod's.
    assert slice_["ports"] == [{"name": "https", "port": 6443, "protocol": "TCP"}]


def test_the_apiservice_is_owned_by_the_chart_s_cluster_role_when_named() -> None:
    service = apiservice.ServiceRef("agentpool-system", "svc", 443)
    owned = apiservice.desired(service, b"CA", apiservice.Owner("rel-agentpool-metrics-api", "u1"))
    assert owned["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "name": "rel-agentpool-metrics-api",
            "uid": "u1",
        }
    ]
    assert "ownerReferences" not in apiservice.desired(service, b"CA")["metadata"]


async def test_a_rotated_front_proxy_ca_replaces_the_listener(tmp_path: Path) -> None:
    old, new = CertAuthority.create(tmp_path / "old"), CertAuthority.create(tmp_path / "new", "n")
    settings = {
        "current": FrontProxy.from_configmap({**CONFIGMAP, "requestheader-client-ca-file": old.pem})
    }

    async def read() -> FrontProxy | None:
        return settings["current"]

    assert settings["current"] is not None
    cert_dir = tmp_path / "serving"
    cert_dir.mkdir()
    cert = make_serving_cert(service_dns_names("svc", "agentpool-system"), cert_dir)
    port = _free_port()
    server = ServingMetricsApi(
        MetricsApi(LoadBoard(), settings["current"], Reviewer()),
        cert,
        read,
        host="127.0.0.1",
        port=port,
    )
    await server.start()
    try:
        served = Served(
            f"https://127.0.0.1:{port}", LoadBoard(), old.client("front-proxy-client"),
            old.client("x"), new.client("front-proxy-client"), cert.cert_file, Reviewer(), [0.0],
        )  # fmt: skip
        async with client_for(served, served.front_proxy) as http:
            assert (await http.get(BASE, headers=AS_HPA)).status_code == 200
        assert not await server.refresh()  # unchanged
        settings["current"] = FrontProxy.from_configmap(
            {**CONFIGMAP, "requestheader-client-ca-file": new.pem}
        )
        assert await server.refresh()
        async with client_for(served, served.front_proxy) as http:
            with pytest.raises(httpx.HTTPError):
                await http.get(BASE, headers=AS_HPA)
        async with client_for(served, served.stranger_other_ca) as http:
            assert (await http.get(BASE, headers=AS_HPA)).status_code == 200
    finally:
        await server.cleanup()


async def test_a_serving_certificate_near_its_end_is_renewed_trusted_first(tmp_path: Path) -> None:
    ca = CertAuthority.create(tmp_path / "ca")
    proxy = FrontProxy.from_configmap({**CONFIGMAP, "requestheader-client-ca-file": ca.pem})
    assert proxy is not None
    names = service_dns_names("svc", "agentpool-system")
    cert_dir = tmp_path / "serving"
    cert_dir.mkdir()
    short = make_serving_cert(names, cert_dir, validity=datetime.timedelta(days=1))
    published: list[bytes] = []

    async def publish(bundle: bytes) -> None:
        published.append(bundle)

    async def read() -> FrontProxy | None:
        return proxy

    port = _free_port()
    server = ServingMetricsApi(
        MetricsApi(LoadBoard(), proxy, Reviewer()), short, read, host="127.0.0.1", port=port,
        renew=lambda: make_serving_cert(names, cert_dir), publish_ca=publish, cert_dir=cert_dir,
    )  # fmt: skip
    await server.start()
    try:
        now = datetime.datetime.now(datetime.UTC)
        assert await server.renew_cert(now)
        renewed = server.cert
        assert published == [short.cert_pem + renewed.cert_pem]
        assert not short.cert_file.exists()
        # The listener serves the new certificate (a client trusting only it gets in).
        identity = ca.client("front-proxy-client")
        served = Served(
            f"https://127.0.0.1:{port}", LoadBoard(), identity, identity, identity,
            renewed.cert_file, Reviewer(), [0.0],
        )  # fmt: skip
        async with client_for(served, identity) as http:
            assert (await http.get(BASE, headers=AS_HPA)).status_code == 200
        assert not await server.renew_cert(now)  # a year left: nothing to do
    finally:
        await server.cleanup()
    assert not cert_dir.exists()  # the private key does not outlive the server
