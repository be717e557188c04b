"""What the cluster benches share: machine info, results files, the comparison table, clusters.

Clusters come from the test suite's :mod:`tests.balancer.cluster` (real ``paddler-tui``
subprocesses on free loopback ports), so benches and tests start processes the same way.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from tests.balancer.cluster import Cluster, cluster_env

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, object]:
    return {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (``fraction`` in 0..1); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


def rss_mib(pid: int) -> float:
    """Resident set size of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


@dataclass(frozen=True)
class Row:
    """One line of a bench's table: a measurement, its same-run baseline, and the target."""

    metric: str
    value: float
    unit: str
    baseline: float | None = None
    target: str = ""
    met: bool | None = None


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.3g}"


def print_table(title: str, rows: Sequence[Row]) -> None:
    print(f"\n{title}")
    header = f"{'metric':<64}{'value':>12}{'baseline':>12}  {'unit':<10}{'target':<16}result"
    print(header)
    print("-" * len(header))
    for row in rows:
        result = "" if row.met is None else ("met" if row.met else "MISSED")
        print(
            f"{row.metric:<64}{_number(row.value):>12}{_number(row.baseline):>12}  "
            f"{row.unit:<10}{row.target:<16}{result}"
        )


def write_results(name: str, data: dict[str, object], rows: Sequence[Row]) -> Path:
    path = RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"machine": machine(), **data, "table": [asdict(row) for row in rows]}
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


@contextlib.contextmanager
def cluster() -> Iterator[Cluster]:
    """A cluster whose processes log into a temporary directory and are stopped on exit."""
    with tempfile.TemporaryDirectory(prefix="paddler-bench-") as directory:
        made = Cluster(Path(directory), cluster_env(Path(directory)))
        try:
            yield made
        finally:
            made.stop()
