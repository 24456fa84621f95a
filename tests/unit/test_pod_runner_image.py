"""Image mode's pure parts: what a rendered pod asks of its container (uid, read-only
mounts, the image's entry point), the `buildah run` line made from it, the environment
file the container's shell reads, and mount paths resolved inside the image's root."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hack.pod_runner.handle import IMAGE_KNOB, image_from_environment
from hack.pod_runner.image import (
    ENV_DIR,
    GUARD,
    ImageConfig,
    PodContainer,
    WorkingContainer,
    container_user,
    env_script,
    resolve_inside,
)
from hack.pod_runner.plan import plan_pod
from tests.unit.test_pod_runner import _rendered

SPEC = {"instructions": "Help.", "model": {"baseUrl": "http://m/v1", "name": "m"}}


def test_a_rendered_pod_runs_the_images_entry_point_as_uid_65532_with_read_only_config() -> None:
    pod, _ = _rendered(SPEC, [])
    plan = plan_pod(pod)
    assert plan is not None
    assert plan.image_entrypoint
    assert (plan.run_as_user, plan.run_as_group) == (65532, 65532)
    mounts = {m.container_path: m.read_only for m in plan.mounts}
    assert mounts["/etc/agentpool"] is True
    assert mounts["/tmp"] is False  # the pod's emptyDir
    assert container_user(plan, "65532:65532") == "65532:65532"

    # The container's securityContext wins over the pod's; the image's USER fills gaps.
    agent = {**pod["spec"]["containers"][0], "securityContext": {"runAsUser": 4242}}
    spec = {**pod["spec"], "securityContext": {}, "containers": [agent]}
    other = plan_pod({**pod, "spec": spec})
    assert other is not None
    assert container_user(other, "65532:65533") == "4242:65533"
    command = {**agent, "command": ["/usr/bin/tini", "--", "agentpool-tool-runner"]}
    custom = plan_pod({**pod, "spec": {**spec, "containers": [command]}})
    assert custom is not None
    assert not custom.image_entrypoint


def test_the_run_line_binds_the_pods_mounts_and_keeps_its_secrets_off_the_command_line(
    tmp_path: Path,
) -> None:
    pod, _ = _rendered(SPEC, [])
    plan = plan_pod(pod)
    assert plan is not None
    root = tmp_path / "root"
    (root / "var").mkdir(parents=True)
    (root / "var" / "run").symlink_to("/run")
    entrypoint = ("/usr/bin/tini", "--", "agentpool-agent")
    container = WorkingContainer(
        "img", "ctr", str(root), ImageConfig(entrypoint=entrypoint, user="65532:65532")
    )
    pod_dir = PodContainer(tmp_path / "pod", "65532:65532", tmp_path / "pod" / ".pod-env")
    argv = container.entrypoint_argv(plan, ["--port", "4321"])
    assert argv == [*entrypoint, "--port", "4321"]
    line = container.command(plan, pod_dir, argv, grace=30)
    assert line[1:4] == [GUARD, "--grace=30", "--container=ctr"]
    run = line[line.index("run") :]
    assert run[:3] == ["run", "--user", "65532:65532"]
    volumes = [run[i + 1] for i, arg in enumerate(run) if arg == "--volume"]
    assert f"{tmp_path}/pod/etc/agentpool:/etc/agentpool:ro" in volumes
    assert f"{tmp_path}/pod/tmp:/tmp" in volumes
    assert f"{tmp_path}/pod/.pod-env:{ENV_DIR}:ro" in volumes
    assert line[-len(argv) :] == argv
    assert "--env" not in line  # the environment travels in the mounted file
    # The root is bound read-only in a mount namespace of its own before buildah runs.
    assert line[line.index("unshare") : line.index("unshare") + 3] == ["unshare", "--mount", "sh"]

    container.make_mount_points(["/var/run/secrets/agentpool/kubernetes"])
    assert (root / "run" / "secrets" / "agentpool" / "kubernetes").is_dir()


def test_mount_paths_resolve_inside_the_root_not_on_the_host(tmp_path: Path) -> None:
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "run").symlink_to("/run")
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "conf").symlink_to("../opt/conf")
    assert resolve_inside(str(tmp_path), "/var/run/secrets/x") == "/run/secrets/x"
    assert resolve_inside(str(tmp_path), "/etc/conf/a") == "/opt/conf/a"
    assert resolve_inside(str(tmp_path), "/etc/agentpool") == "/etc/agentpool"
    assert resolve_inside(str(tmp_path), "/a/../../etc") == "/etc"


names = st.from_regex(r"T_[A-Z0-9_]{0,8}", fullmatch=True)
values = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"))


@settings(max_examples=25, deadline=None)  # each example starts a shell
@given(env=st.dictionaries(names, values, max_size=5))
def test_the_environment_file_gives_the_container_every_value_unchanged(
    env: dict[str, str],
) -> None:
    path = Path(tempfile.gettempdir()) / f"podimage-env-{os.getpid()}.sh"
    path.write_text(env_script(env))
    try:
        out = subprocess.run(
            ["/bin/sh", "-c", 'set -a && . "$0" && set +a && exec env -0', str(path)],
            capture_output=True,
            check=True,
            env={"PATH": os.environ["PATH"]},
        )
    finally:
        path.unlink()
    seen = dict(
        item.split("=", 1) for item in out.stdout.decode().split("\0") if item.startswith("T_")
    )
    assert seen == env


def test_the_test_knob_picks_image_mode_for_runners_without_an_image_or_warm_forks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(IMAGE_KNOB, raising=False)
    assert image_from_environment([]) is None
    monkeypatch.setenv(IMAGE_KNOB, "0")
    assert image_from_environment([]) is None
    monkeypatch.setenv(IMAGE_KNOB, "localhost/agentpool/agent:k")
    assert image_from_environment([]) == "localhost/agentpool/agent:k"
    assert image_from_environment(["--fork-server"]) is None
