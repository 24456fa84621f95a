"""kube-score over any manifests, and the justified exceptions in docs/kube-score.md.

`score(manifests)` runs the pinned kube-score (hack/build-linters.sh builds it once) and
returns its findings; `unjustified(findings)` keeps the CRITICAL ones that the docs'
table does not justify. A test asserts that list is empty, for the chart's output and
for a rendered pool's children alike:

    assert unjustified(score(children)) == []
"""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from tests.support.redis_server import REPO_ROOT

JUSTIFICATIONS = REPO_ROOT / "docs" / "kube-score.md"
# The Kubernetes version the local control plane runs (hack/lib.sh); kube-score's
# deprecation checks depend on it.
KUBERNETES_VERSION = "v1.34"
GRADES = {0: "SKIPPED", 1: "CRITICAL", 5: "WARNING", 7: "ALMOST_OK", 10: "OK"}


@dataclass(frozen=True)
class Finding:
    check: str
    """kube-score's check id, e.g. `pod-networkpolicy`."""
    object: str
    """`Kind/name` of the object it is about."""
    grade: str
    """CRITICAL, WARNING, ALMOST_OK or OK."""
    summary: str


@dataclass(frozen=True)
class Justification:
    check: str
    object: str
    """`Kind/name`, where the name may hold `*` wildcards (release and pool names vary)."""
    reason: str
    section: str
    """The `## ` heading the row sits under (e.g. "The chart")."""

    def covers(self, finding: Finding) -> bool:
        return finding.check == self.check and fnmatch.fnmatchcase(finding.object, self.object)


@cache
def binary() -> Path:
    """The pinned kube-score, built on first use (about 90 s, then cached)."""
    out = subprocess.run(
        [str(REPO_ROOT / "hack" / "build-linters.sh")],
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )
    if out.returncode != 0:
        raise RuntimeError(f"hack/build-linters.sh failed:\n{out.stderr[-4000:]}")
    return Path(out.stdout.strip().splitlines()[-1]) / "kube-score"


def score(
    manifests: str | Iterable[Mapping[str, Any]],
    *,
    extra_args: Sequence[str] = (),
) -> list[Finding]:
    """Every non-skipped check of every object, from a YAML stream or a list of dicts."""
    text = (
        manifests
        if isinstance(manifests, str)
        else yaml.safe_dump_all([dict(m) for m in manifests], sort_keys=False)
    )
    out = subprocess.run(
        [
            str(binary()),
            "score",
            "--output-format=json",
            f"--kubernetes-version={KUBERNETES_VERSION}",
            *extra_args,
            "-",
        ],
        input=text,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    # Exit 1 means "found something critical"; anything else without JSON is a failure.
    if out.returncode not in (0, 1) or not out.stdout.strip():
        raise RuntimeError(f"kube-score failed ({out.returncode}):\n{out.stderr[-4000:]}")
    findings: list[Finding] = []
    for scored in json.loads(out.stdout):
        kind = scored["type_meta"]["kind"]
        name = scored["object_meta"].get("name", "")
        for result in scored["checks"] or []:
            if result.get("skipped"):
                continue
            comments = result.get("comments") or []
            findings.append(
                Finding(
                    check=result["check"]["id"],
                    object=f"{kind}/{name}",
                    grade=GRADES.get(result["grade"], str(result["grade"])),
                    summary="; ".join(
                        f"{c.get('path', '')}: {c.get('summary', '')}".strip(": ") for c in comments
                    ),
                )
            )
    return findings


_ROW = re.compile(
    r"^\|\s*`(?P<check>[a-z0-9-]+)`\s*\|\s*`(?P<object>[^`]+)`\s*\|(?P<reason>.*)\|\s*$"
)


def justifications(
    path: Path = JUSTIFICATIONS, *, section: str | None = None
) -> list[Justification]:
    """The table rows of docs/kube-score.md: | `check-id` | `Kind/name` | reason |.

    With `section`, only the rows under the `## ` heading of that name.
    """
    found = []
    heading = ""
    for line in path.read_text().splitlines():
        if line.startswith("## "):
            heading = line.removeprefix("## ").strip()
        match = _ROW.match(line.strip())
        if match and (section is None or heading == section):
            reason = match.group("reason").strip()
            if not reason:
                raise ValueError(f"{path}: a justification without a reason: {line}")
            found.append(
                Justification(match.group("check"), match.group("object"), reason, heading)
            )
    return found


def unjustified(
    findings: Iterable[Finding], allowed: Sequence[Justification] | None = None
) -> list[Finding]:
    """The CRITICAL findings no justification covers."""
    rules = justifications() if allowed is None else allowed
    return [f for f in findings if f.grade == "CRITICAL" and not any(j.covers(f) for j in rules)]


def unused(findings: Iterable[Finding], allowed: Sequence[Justification]) -> list[Justification]:
    """Justifications that cover no CRITICAL finding (stale lines in the docs)."""
    critical = [f for f in findings if f.grade == "CRITICAL"]
    return [j for j in allowed if not any(j.covers(f) for f in critical)]
