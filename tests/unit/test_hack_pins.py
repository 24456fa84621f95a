"""The control-plane build pins stay consistent with each other."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _kube_version() -> str:
    text = (REPO / "hack" / "lib.sh").read_text()
    match = re.search(r'KUBE_VERSION="(v1\.\d+\.\d+)"', text)
    assert match, "hack/lib.sh must pin KUBE_VERSION"
    return match.group(1)


def test_every_staging_module_is_replaced_at_the_matching_version() -> None:
    version = _kube_version()
    staging = "v0." + version.removeprefix("v1.")
    gomod = (REPO / "hack" / "tools" / "kubernetes" / "go.mod").read_text()
    assert f"k8s.io/kubernetes {version}" in gomod
    replaces = re.findall(r"^\s*(k8s\.io/[\w.-]+) => (k8s\.io/[\w.-]+) (v\S+)$", gomod, re.M)
    assert len(replaces) >= 25, "the staging replace list looks truncated"
    for source, target, pinned in replaces:
        assert source == target
        assert pinned == staging, f"{source} is pinned to {pinned}, expected {staging}"


def test_etcd_is_a_3_5_release_matching_the_version_kwokctl_is_told() -> None:
    gomod = (REPO / "hack" / "tools" / "etcd" / "go.mod").read_text()
    built = re.search(r"go\.etcd\.io/etcd/server/v3 v(3\.5\.\d+)", gomod)
    assert built, "etcd must be a 3.5.x release"
    told = re.search(r'ETCD_VERSION="([\d.]+)"', (REPO / "hack" / "lib.sh").read_text())
    assert told
    assert told.group(1) == built.group(1)
