"""The two images as users run them: built here with buildah (hack/build-images.sh, cached
by content across sessions), run with `buildah run` on a read-only root with only /tmp
writable. Each entry point starts in its image: the runtime serves /healthz against the
test Redis as uid 65532 under tini, which reaps the orphans of its command tools; the
operator serves /healthz against the test cluster and reconciles a pool to Ready; the
tool-runner serves a call on its socket as uid 65533. Nothing outside /tmp is writable;
no compiler, pip or apt; the sizes are reported.

Skipped, with the reason, only where buildah cannot be installed."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client as kube

from agent_runtime.sandbox.client import run_remote
from agent_runtime.sandbox.protocol import RunLimits, RunRequest
from tests.integration.crd_install import install_crds
from tests.support.cluster import Cluster
from tests.support.images import (
    KUBECONFIG_DIR,
    REPO_ROOT,
    BuildahUnavailableError,
    BuiltImages,
    Container,
    apparent_size,
    build_images,
    cmdline,
    descendants,
    image_config,
    proc_status,
    readable_by_the_image,
    top_contributors,
    wait_answering,
    write_kubeconfig,
)
from tests.support.redis_server import RedisServer, free_port
from tests.support.wait import wait_until

# The first test of a fresh machine builds the bases and both images (minutes); after that
# an unchanged tree builds nothing.
pytestmark = pytest.mark.timeout(3000)

UID = "65532"
RUNNER_UID = 65533  # the tool-runner sidecar's uid, as the operator renders it
VERSION = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]
# Uncompressed (the files' bytes, about what `buildah images` shows): the issue's goals.
SIZE_LIMITS_MB = {"agent": 250, "operator": 150}
ORPHAN_SECONDS = 2
MOUNT = "/etc/agentpool"  # where the operator mounts the runtime's config
GROUP, API_VERSION = "agentpool.dev", "v1alpha1"


@pytest.fixture(scope="module")
def report(request: pytest.FixtureRequest) -> Iterator[list[str]]:
    """Lines printed after the module's tests (sizes, build and startup times)."""
    lines: list[str] = []
    yield lines
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None or not lines:
        return
    with capture.global_and_fixture_disabled():
        reporter.write_sep("-", "images")
        for line in lines:
            reporter.write_line(line)


@pytest.fixture(scope="module")
def images(report: list[str]) -> BuiltImages:
    try:
        built = build_images()
    except BuildahUnavailableError as exc:
        pytest.skip(f"buildah is not available and could not be installed: {exc}")
    report.append(f"build-images.sh: {built.seconds:.1f}s ({', '.join(built.refs.values())})")
    return built


@pytest.fixture(scope="module")
def agent_container(images: BuiltImages) -> Iterator[Container]:
    container = Container.create(images.refs["agent"])
    yield container
    container.remove()


@pytest.fixture(scope="module")
def operator_container(images: BuiltImages) -> Iterator[Container]:
    container = Container.create(images.refs["operator"])
    yield container
    container.remove()


def agent_config(redis_url: str) -> dict[str, object]:
    return {
        "pool": {"namespace": "tests", "name": "image"},
        "memory": {"redis": {"url": redis_url, "reconnectBackoffMaxSeconds": 0.5}},
        "tools": {
            "definitions": [
                {
                    # Leaves an orphan in a session of its own, out of reach of the
                    # command sandbox's process-group kill: only an init can reap it.
                    "name": "orphan",
                    "parameters": {"type": "object", "properties": {}},
                    "command": {
                        "argv": [
                            "sh",
                            "-c",
                            f"setsid sleep {ORPHAN_SECONDS} >/dev/null 2>&1 </dev/null & echo $!",
                        ],
                        "allowedBinaries": ["sh"],
                    },
                }
            ]
        },
    }


@pytest.fixture(scope="module")
def agent(
    agent_container: Container,
    redis_server: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
    report: list[str],
) -> Iterator[tuple[httpx.Client, int]]:
    """The runtime in its image on a read-only root, against the test Redis: (client, pid
    of the process `buildah run` started)."""
    config_dir = tmp_path_factory.mktemp("agent-config")
    token = secrets.token_urlsafe(24)
    tokens = {"tokens": [{"name": "gateway", "token": token, "tenant": "*"}]}
    (config_dir / "tokens.json").write_text(json.dumps(tokens))
    config = {**agent_config(redis_server.url), "auth": {"tokensFile": f"{MOUNT}/tokens.json"}}
    (config_dir / "config.json").write_text(json.dumps(config))
    readable_by_the_image(config_dir)
    port = free_port()
    log = config_dir / "agent.log"
    argv = [
        *agent_container.entrypoint(),
        "--host=127.0.0.1",
        f"--port={port}",
        f"--config={MOUNT}/config.json",
    ]
    start = time.monotonic()
    proc = agent_container.popen(argv, log, volumes=[f"{config_dir}:{MOUNT}:ro"])
    client = httpx.Client(
        base_url=f"http://127.0.0.1:{port}",
        timeout=10,
        headers={"Authorization": f"Bearer {token}"},
    )

    try:
        wait_answering(
            proc,
            f"http://127.0.0.1:{port}/healthz",
            log,
            timeout=60,
            what="agentpool-agent in its image to serve /healthz",
        )
        report.append(
            f"agentpool-agent in its image: /healthz after {time.monotonic() - start:.2f}s"
        )
        yield client, proc.pid
    finally:
        client.close()
        agent_container.stop(proc)


def test_image_config_runs_non_root_under_tini_with_labels(images: BuiltImages) -> None:
    for name, ref in images.refs.items():
        config = image_config(ref)
        assert config["User"] == f"{UID}:{UID}", name
        assert config["Entrypoint"][:2] == ["/usr/bin/tini", "--"], name
        assert f"agentpool-{name}" in config["Entrypoint"], name
        assert "TINI_SUBREAPER=1" in config["Env"], name
        labels = config["Labels"]
        assert labels["org.opencontainers.image.version"] == VERSION, name
        assert labels["org.opencontainers.image.source"].startswith("https://"), name


def test_agent_serves_healthz_and_readyz_against_redis_as_uid_65532(
    agent: tuple[httpx.Client, int],
) -> None:
    client, pid = agent
    assert client.get("/healthz").json() is not None
    wait_until(
        lambda: client.get("/readyz").status_code == 200,
        timeout=30,
        what="/readyz with the test Redis",
    )
    tree = descendants(pid)
    tini = next(p for p in tree if cmdline(p)[:1] == ["/usr/bin/tini"])
    # tini's only child is the runtime: the Python interpreter running the console script.
    (runtime,) = (p for p in tree if (proc_status(p) or {}).get("PPid") == str(tini))
    assert any(arg.endswith("/agentpool-agent") for arg in cmdline(runtime)[:2]), cmdline(runtime)
    runtime_status = proc_status(runtime)
    assert runtime_status is not None
    assert runtime_status["Uid"].split()[0] == UID
    assert runtime_status["Gid"].split()[0] == UID


def test_a_command_tools_orphan_is_reaped_not_left_a_zombie(
    agent: tuple[httpx.Client, int],
) -> None:
    client, pid = agent
    tree = descendants(pid)
    call = client.post("/v1/tools/orphan/call", json={"arguments": {}, "tenant": "t"})
    assert call.status_code == 200, call.text
    orphan = int(call.json()["value"]["stdout"].strip())
    # The orphan escaped its shell's session. Whoever adopts it (the runtime's command
    # supervisor, a child subreaper, or else tini) must reap it: a zombie stays in /proc.
    wait_until(
        lambda: proc_status(orphan) is None,
        timeout=ORPHAN_SECONDS + 15,
        what=f"orphan {orphan} to exit and be reaped (a zombie stays in /proc)",
    )
    zombies = [p for p in descendants(pid) if (proc_status(p) or {}).get("State", "")[:1] == "Z"]
    assert zombies == [], f"zombies under the container: {zombies} (before the call: {tree})"


def test_tini_adopts_and_reaps_orphans(agent_container: Container) -> None:
    """tini itself, without the runtime: a grandchild orphaned by its parent is re-parented
    to tini (PID 1 in a pod; the subreaper here) and reaped when it exits."""
    script = (
        'sh -c "setsid sleep 1 >/dev/null 2>&1 </dev/null & echo \\$!" >/tmp/orphan; '
        "o=$(cat /tmp/orphan); adopter=$(awk '/^PPid:/ {print $2}' /proc/$o/status); "
        "sleep 2.5; "
        'if [ -e /proc/$o ]; then echo "LEFT $(grep State /proc/$o/status)"; else echo REAPED; fi; '
        'echo "ADOPTER=$adopter TINI=$PPID"'
    )
    out = agent_container.run(["/usr/bin/tini", "--", "sh", "-c", script])
    assert out.returncode == 0, out.stderr
    assert "REAPED" in out.stdout, out.stdout
    adopter, tini = (part.split("=")[1] for part in out.stdout.split("\n")[-2].split())
    assert adopter == tini, f"the orphan went to {adopter}, not to tini ({tini})"


@pytest.mark.parametrize("name", ["agent", "operator"])
def test_root_is_read_only_but_tmp_and_no_build_tools_or_caches(
    name: str, agent_container: Container, operator_container: Container
) -> None:
    container = agent_container if name == "agent" else operator_container
    script = (
        "set -u; for p in /etc/x /opt/agentpool/x /x /var/tmp/x /usr/bin/x; do"
        " if touch $p 2>/dev/null; then echo WROTE $p; fi; done;"
        " echo ok >/tmp/probe && echo TMP $(cat /tmp/probe);"
        " for t in gcc cc c++ g++ make pip pip3 apt apt-get strip; do"
        " command -v $t >/dev/null && echo FOUND $t; done;"
        " python3 -m pip --version >/dev/null 2>&1 && echo FOUND python3-pip;"
        " /opt/agentpool/bin/python3 -m pip --version >/dev/null 2>&1 && echo FOUND venv-pip;"
        " id -u"
    )
    out = container.run(["sh", "-c", script])
    assert out.returncode == 0, out.stderr
    lines = out.stdout.split("\n")
    assert [line for line in lines if line.startswith(("WROTE", "FOUND"))] == []
    assert "TMP ok" in lines
    assert UID in lines
    # As root too (a pod could run with runAsUser 0), the root file system refuses writes.
    as_root = container.run(["sh", "-c", "touch /etc/x /opt/x 2>&1; true"], user="0:0")
    assert as_root.stdout.count("Read-only file system") == 2, as_root.stdout
    # No package manager's caches or lists (apt's, pip's) are left in the image.
    for inside in ("var/cache", "var/lib/apt/lists", "root/.cache", "tmp/.cache"):
        path = container.root / inside
        left = sorted(entry.name for entry in path.iterdir()) if path.is_dir() else []
        assert left == [], f"{name}: /{inside} holds {left}"


def test_each_image_carries_only_its_own_extras(
    agent_container: Container, operator_container: Container
) -> None:
    probe = (
        "import importlib.util as u, sys\n"
        "def has(m):\n"
        "    try:\n"
        "        return u.find_spec(m) is not None\n"
        "    except ModuleNotFoundError:\n"
        "        return False\n"
        "print(' '.join(m for m in sys.argv[1:] if has(m)))"
    )
    # redis: the runtime's memory and tasks, the operator's autoscaler (load samples).
    both = ["redis", "pydantic"]
    agent_only = ["fastapi", "numpy", "usearch", "openai"]
    operator_only = ["kopf", "kubernetes", "agentpool_operator"]
    neither = ["kubernetes.aio", "pytest", "hypothesis", "mypy"]
    every = [*both, *agent_only, *operator_only, *neither]
    in_agent = agent_container.run(["python3", "-c", probe, *every])
    assert in_agent.stdout.split() == [*both, *agent_only], in_agent.stderr
    in_operator = operator_container.run(["python3", "-c", probe, *every])
    assert in_operator.stdout.split() == [*both, *operator_only], in_operator.stderr


def _pool_ready(custom: kube.CustomObjectsApi, namespace: str, name: str) -> bool:
    pool: Any = custom.get_namespaced_custom_object(
        GROUP, API_VERSION, namespace, "agentpools", name
    )
    conditions = (pool.get("status") or {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def test_operator_serves_healthz_and_reconciles_a_pool_in_its_image(
    images: BuiltImages,
    operator_container: Container,
    cluster: Cluster,
    kube_api: kube.ApiClient,
    namespace: str,
    tmp_path: Path,
    report: list[str],
) -> None:
    """The operator as the chart runs it, but out of cluster: its image, a read-only root,
    uid 65532, a kubeconfig mounted read-only (as a Secret would be) and the settings in
    the environment. /healthz answers, and a pool gets its children and becomes Ready:
    the image's kopf, kubernetes client and operator code really talk to the API server
    (chroot isolation shares the host's network, so its loopback address works)."""
    install_crds(cluster)
    config_dir = tmp_path / "operator-config"
    config_dir.mkdir()
    kubeconfig = write_kubeconfig(cluster, config_dir)
    health, metrics = free_port(), free_port()
    argv = [
        *operator_container.entrypoint(),
        f"--namespace={namespace}",
        "--standalone",
        f"--health-port={health}",
        f"--metrics-port={metrics}",
        "--log-format=json",
    ]
    env = {
        "KUBECONFIG": kubeconfig,
        "AGENTPOOL_AGENT_IMAGE": images.refs["agent"],
        "AGENTPOOL_OPERATOR_NAMESPACE": "agentpool-system",
    }
    log = tmp_path / "operator.log"
    start = time.monotonic()
    proc = operator_container.popen(
        argv, log, volumes=[f"{config_dir}:{KUBECONFIG_DIR}:ro"], env=env
    )

    healthz = f"http://127.0.0.1:{health}/healthz"
    try:
        wait_answering(proc, healthz, log, timeout=60, what="agentpool-operator's /healthz")
        healthy_after = time.monotonic() - start
        (operator,) = (
            p
            for p in descendants(proc.pid)
            if "/opt/agentpool/bin/agentpool-operator" in cmdline(p)
        )
        status = proc_status(operator)
        assert status is not None
        assert status["Uid"].split()[0] == UID
        core, custom = kube.CoreV1Api(kube_api), kube.CustomObjectsApi(kube_api)
        core.create_namespaced_secret(
            namespace,
            kube.V1Secret(metadata=kube.V1ObjectMeta(name="llm"), string_data={"api-key": "k"}),
        )
        pool = {
            "apiVersion": f"{GROUP}/{API_VERSION}",
            "kind": "AgentPool",
            "metadata": {"name": "imaged"},
            "spec": {
                "instructions": "Help.",
                "model": {
                    "baseUrl": "http://llm.example.com/v1",
                    "name": "m",
                    "apiKeySecretRef": {"name": "llm", "key": "api-key"},
                },
            },
        }
        created = time.monotonic()
        custom.create_namespaced_custom_object(GROUP, API_VERSION, namespace, "agentpools", pool)

        def ready() -> bool:
            if proc.poll() is not None:  # pytest.fail is no Exception: wait_until lets it through
                pytest.fail(f"the operator container exited:\n{log.read_text()[-3000:]}")
            return _pool_ready(custom, namespace, "imaged")

        wait_until(ready, timeout=90, what="the pool Ready, reconciled by the imaged operator")
        ready_after = time.monotonic() - created
        for kind in ("deployment", "service", "serviceaccount"):
            child = json.loads(
                cluster.kubectl("-n", namespace, "get", kind, "imaged", "-o", "json").stdout
            )
            assert child["metadata"]["ownerReferences"][0]["kind"] == "AgentPool", kind
            if kind == "deployment":
                (agent,) = (
                    c
                    for c in child["spec"]["template"]["spec"]["containers"]
                    if c["name"] == "agent"
                )
                assert agent["image"] == images.refs["agent"]  # the settings came from the env
        report.append(
            f"agentpool-operator in its image: /healthz after {healthy_after:.2f}s; "
            f"a new pool Ready {ready_after:.2f}s after it was created"
        )
    finally:
        operator_container.stop(proc)


def test_operator_image_makes_the_metrics_apis_certificate(operator_container: Container) -> None:
    """HPA mode's serving certificate comes from the openssl command (no cryptography
    package in the operator image): it works there, on a read-only root, as uid 65532."""
    probe = (
        "from agentpool_operator.autoscaler.metrics_api.serving_cert import "
        "make_serving_cert, service_dns_names\n"
        "import pathlib, tempfile\n"
        "where = pathlib.Path(tempfile.mkdtemp())\n"  # the server's own directory, in /tmp
        "cert = make_serving_cert(service_dns_names('svc', 'agentpool-system'), where)\n"
        "print(cert.cert_pem.decode().splitlines()[0], oct(cert.key_file.stat().st_mode))"
    )
    out = operator_container.run(["python3", "-c", probe])
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["-----BEGIN", "CERTIFICATE-----", "0o100600"], out.stdout


def test_tool_runner_serves_a_call_in_the_agent_image_as_uid_65533(
    agent_container: Container, tmp_path: Path, report: list[str]
) -> None:
    """The sidecar as the operator renders it: the agent image's `agentpool-tool-runner`
    under tini as uid 65533, its socket on a directory shared with the runtime's container
    (an emptyDir in a pod). A call over the socket runs a program as 65533."""
    shared = tmp_path / "tools"
    shared.mkdir()
    os.chown(shared, RUNNER_UID, RUNNER_UID)
    shared.chmod(0o755)
    inside = "/run/agentpool/tools"
    argv = [
        "/usr/bin/tini",
        "--",
        "agentpool-tool-runner",
        f"--socket={inside}/runner.sock",
        "--allowed-uid=0",  # this test calls it as root, from the host
    ]
    log = tmp_path / "tool-runner.log"
    start = time.monotonic()
    proc = agent_container.popen(
        argv, log, volumes=[f"{shared}:{inside}"], user=f"{RUNNER_UID}:{RUNNER_UID}"
    )
    try:

        def listening() -> bool:
            if proc.poll() is not None:  # pytest.fail is no Exception: wait_until lets it through
                pytest.fail(f"the tool-runner container exited:\n{log.read_text()[-3000:]}")
            return (shared / "runner.sock").is_socket()

        wait_until(listening, timeout=60, what="the tool-runner's socket in the agent image")
        listening_after = time.monotonic() - start
        request = RunRequest(
            argv=["/usr/bin/id", "-u"],
            timeout_seconds=10,
            max_output_bytes=100,
            limits=RunLimits(cpu_seconds=2, memory_bytes=64 << 20, file_size_bytes=0, processes=4),
        )
        outcome = asyncio.run(run_remote(str(shared / "runner.sock"), request))
        assert outcome.result is not None, outcome.error_message
        assert outcome.result.exit_code == 0, outcome.result.stderr
        assert outcome.result.stdout.strip() == str(RUNNER_UID)
        report.append(
            f"agentpool-tool-runner in the agent image: socket after {listening_after:.2f}s"
        )
    finally:
        agent_container.stop(proc)


@pytest.mark.parametrize("name", ["agent", "operator"])
def test_image_size_is_reported_and_within_its_limit(
    name: str,
    agent_container: Container,
    operator_container: Container,
    report: list[str],
) -> None:
    container = agent_container if name == "agent" else operator_container
    size = apparent_size(container.root)
    top = top_contributors(
        container.root,
        ["/opt/agentpool/lib/python3.11/site-packages", "/usr/lib/x86_64-linux-gnu", "/usr/lib"],
    )
    listed = ", ".join(f"{path.rsplit('/', 1)[-1]} {usage / 1e6:.0f}" for path, usage in top)
    report.append(f"{name} image: {size / 1e6:.0f} MB; largest (MB): {listed}")
    assert size < SIZE_LIMITS_MB[name] * 1e6, f"{name}: {size / 1e6:.0f} MB; {listed}"


def test_build_is_cached_when_nothing_changed(images: BuiltImages) -> None:
    again = build_images()
    assert again.refs == images.refs
    assert again.seconds < 30, f"an unchanged tree took {again.seconds:.1f}s to 'build'"
