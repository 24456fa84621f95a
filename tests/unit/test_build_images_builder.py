"""Which builder `make images` (hack/build-images.sh) picks, and what it asks Docker to do.

No Docker engine runs on these machines, so the Docker path is checked against a fake
`docker` first on PATH that records its arguments: with an engine (`docker info`
succeeds) the script builds both images with `docker build` on the Containerfiles' own
base (the official slim Python image) and never touches buildah; with a docker CLI but no
engine, or when told to, it takes the buildah path. The fake buildah and mmdebstrap only
record that they were called and fail, which ends the buildah path early."""

from __future__ import annotations

import os
import re
import subprocess
import tomllib
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "hack" / "build-images.sh"
VERSION = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]
SLIM = "docker.io/library/python:3.11-slim-bookworm"

# Records "$@" as one line in $FAKE_LOG/NAME.log; `docker info` exits $FAKE_DOCKER_INFO.
FAKE = """#!/bin/sh
echo "$*" >>"$FAKE_LOG/$(basename "$0").log"
case "$(basename "$0") $1" in
  "docker info") exit "${FAKE_DOCKER_INFO:-0}" ;;
  "docker build") exit 0 ;;
esac
echo "fake $(basename "$0"): not for this test" >&2
exit 1
"""


def _run(
    tmp_path: Path, **env: str
) -> tuple[subprocess.CompletedProcess[str], list[str], list[str]]:
    """Runs the script with the fakes first on PATH: (result, docker calls, buildah calls)."""
    bin_dir, logs = tmp_path / "bin", tmp_path / "logs"
    bin_dir.mkdir(exist_ok=True)
    logs.mkdir(exist_ok=True)
    for name in ("docker", "buildah", "mmdebstrap"):
        fake = bin_dir / name
        fake.write_text(FAKE)
        fake.chmod(0o755)
    full_env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"AGENTPOOL_IMAGE_BUILDER", "AGENTPOOL_IMAGE_REVISION"}
    }
    full_env |= {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "FAKE_LOG": str(logs),
        "AGENTPOOL_CACHE": str(tmp_path / "cache"),  # the real caches stay untouched
        **env,
    }
    out = subprocess.run(
        [str(SCRIPT)], capture_output=True, text=True, env=full_env, timeout=60, check=False
    )

    def calls(name: str) -> list[str]:
        log = logs / f"{name}.log"
        return log.read_text().splitlines() if log.exists() else []

    return out, calls("docker"), calls("buildah")


def test_with_a_docker_engine_both_images_are_built_by_docker_on_the_slim_base(
    tmp_path: Path,
) -> None:
    out, docker, buildah = _run(tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        f"agent ghcr.io/agentpool/agent:{VERSION}",
        f"operator ghcr.io/agentpool/operator:{VERSION}",
    ]
    assert buildah == []
    assert docker[0] == "info"
    builds = docker[1:]
    assert len(builds) == 2
    for name, containerfile, build in zip(
        ("agent", "operator"),
        ("agent_image/Containerfile", "operator/Containerfile"),
        builds,
        strict=True,
    ):
        # The context is the repository root; the base is the Containerfile's default.
        assert build.startswith("build -q "), build
        assert build.endswith(f"-f {containerfile} -t ghcr.io/agentpool/{name}:{VERSION} ."), build
        assert f"--build-arg VERSION={VERSION}" in build
        assert "--build-arg REVISION=unknown" in build
        assert "BASE_IMAGE" not in build
        assert "BUILD_IMAGE" not in build


def test_a_revision_labels_the_docker_build(tmp_path: Path) -> None:
    out, docker, _ = _run(tmp_path, AGENTPOOL_IMAGE_REVISION="abc123")
    assert out.returncode == 0, out.stderr
    assert all("--build-arg REVISION=abc123" in build for build in docker[1:])


@pytest.mark.parametrize(
    "env",
    [
        {"FAKE_DOCKER_INFO": "1"},  # a docker CLI without a running engine
        {"AGENTPOOL_IMAGE_BUILDER": "buildah"},  # told to, with an engine running
    ],
    ids=["no-engine", "forced"],
)
def test_without_an_engine_or_when_told_buildah_builds(tmp_path: Path, env: dict[str, str]) -> None:
    out, docker, buildah = _run(tmp_path, **env)
    assert not [call for call in docker if call.startswith("build")]
    assert buildah, f"buildah was never called:\n{out.stderr}"
    assert out.returncode != 0  # the fake buildah ends the buildah path


@pytest.mark.parametrize("containerfile", ["agent_image/Containerfile", "operator/Containerfile"])
def test_the_containerfiles_default_to_the_slim_python_image(containerfile: str) -> None:
    text = (REPO_ROOT / containerfile).read_text()
    defaults = dict(re.findall(r"^ARG (BASE_IMAGE|BUILD_IMAGE)=(\S+)$", text, re.MULTILINE))
    assert defaults == {"BASE_IMAGE": SLIM, "BUILD_IMAGE": SLIM}
