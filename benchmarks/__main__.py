"""Run every benchmark module (or those named on the command line)."""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys
from pathlib import Path

# Benchmarks that need more than this checkout (a running operator; buildah and a cluster;
# a cluster of its own and minutes of load):
# run when named, or in the full run only when their environment variable is set.
OPT_IN = {
    "bench_operator": "AGENTPOOL_BENCH_OPERATOR",
    "bench_images": "AGENTPOOL_BENCH_IMAGES",
    "bench_pod_runner": "AGENTPOOL_BENCH_POD_RUNNER",
    "bench_autoscaling": "AGENTPOOL_BENCH_AUTOSCALING",
}


def main(argv: list[str]) -> int:
    here = Path(__file__).parent
    names = sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))
    default = [n for n in names if n not in OPT_IN or os.environ.get(OPT_IN[n])]
    skipped = sorted(set(names) - set(default))
    if not argv and skipped:
        print("skipping (opt-in): " + ", ".join(f"{n} (set {OPT_IN[n]}=1)" for n in skipped))
    wanted = [f"bench_{a.removeprefix('bench_')}" for a in argv] or default
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; have: {', '.join(names)}")
        return 2
    for name in wanted:
        print(f"\n=== {name} ===", flush=True)
        importlib.import_module(f"benchmarks.{name}").main()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
