"""Install the generated CRDs into the test cluster and wait until they are served."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.cluster import Cluster
from tests.support.wait import wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
CRD_NAMES = ("agentpools.agentpool.dev", "agenttools.agentpool.dev")


def install_crds(cluster: Cluster) -> None:
    """Server-side apply crds/ (idempotent) and wait for both CRDs to be Established."""
    cluster.kubectl(
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager=agentpool-tests",
        "-f",
        str(REPO_ROOT / "crds"),
    )

    def established() -> bool:
        out = cluster.kubectl("get", "crd", *CRD_NAMES, "-o", "json").stdout
        for item in json.loads(out)["items"]:
            conditions = {
                c["type"]: c["status"] for c in item.get("status", {}).get("conditions", [])
            }
            if conditions.get("Established") != "True" or conditions.get("NamesAccepted") != "True":
                return False
        return True

    wait_until(established, timeout=60, what="the agentpool.dev CRDs to be Established")
