"""What every bench shares: machine info, setups taking turns, results files, the comparison
table, clusters.

Clusters come from the test suite's :mod:`tests.support.cluster` (real ``paddler-tui``
subprocesses on free loopback ports), so benches and tests start processes the same way.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import math
import os
import platform
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TypeVar

from tests.support.cluster import Cluster, cluster_env

RESULTS = Path(__file__).resolve().parent / "results"

T = TypeVar("T")


def cpu() -> tuple[str, list[str]]:
    """The CPU's model name and feature flags, from /proc/cpuinfo (ARM calls them Features).

    llama.cpp picks its kernels (and whether weights are repacked) by these flags, so two
    results are only comparable on the same model and flags.
    """
    fields: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    name = fields.get("model name") or fields.get("Hardware") or platform.processor()
    flags = fields.get("flags") or fields.get("Features") or ""
    return name or "unknown", flags.split()


def llama_cpp_python_version() -> str | None:
    try:
        return importlib.metadata.version("llama-cpp-python")
    except importlib.metadata.PackageNotFoundError:
        return None


def machine() -> dict[str, object]:
    name, flags = cpu()
    return {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "cpu_model": name,
        "cpu_flags": flags,
        "python": platform.python_version(),
        "llama_cpp_python": llama_cpp_python_version(),
    }


def print_machine() -> None:
    """The line printed before each bench's result: which CPU (and kernels) produced it."""
    name, flags = cpu()
    print(f"\ncpu: {name} ({os.cpu_count()} cpus), llama-cpp-python {llama_cpp_python_version()}")
    print(f"cpu flags: {' '.join(flags)}")


def extra_buffers_verdict(model: str) -> tuple[bool, str]:
    """Whether llama.cpp's extra buffer types (weight repacking) work on this host, and why.

    The agent's cached per-host probe decides; every side of a comparison follows it, so that
    llama-server gets ``--no-repack`` (and ``Llama`` no extra buffers) only where they crash.
    """
    from paddler_tui.server.agent.engine.extra_buffers import probe_verdict_sync

    verdict = probe_verdict_sync(model)
    return verdict.enabled, verdict.reason


def take_turns(rounds: int, setups: Mapping[str, Callable[[], T]]) -> dict[str, list[T]]:
    """Every setup's runs: each setup runs once a round, in turn, for ``rounds`` rounds, so a
    noisy moment on the machine hits every setup alike."""
    runs: dict[str, list[T]] = {name: [] for name in setups}
    for _ in range(rounds):
        for name, run in setups.items():
            runs[name].append(run())
    return runs


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
    print_machine()
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


def write_document(path: Path, document: Mapping[str, object]) -> None:
    """A results file: ``document`` as indented JSON, its directory made if need be."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")


def write_results(name: str, data: dict[str, object], rows: Sequence[Row]) -> Path:
    path = RESULTS / f"{name}.json"
    write_document(path, {"machine": machine(), **data, "table": [asdict(row) for row in rows]})
    return path


def publish(name: str, title: str, data: dict[str, object], rows: Sequence[Row]) -> None:
    """A cluster bench's ending: its results file written, its table printed, the file named."""
    path = write_results(name, data, rows)
    print_table(title, rows)
    print(f"\nwritten to {path}")


@contextlib.contextmanager
def cluster() -> Iterator[Cluster]:
    """A cluster whose processes log into a temporary directory and are stopped on exit."""
    with tempfile.TemporaryDirectory(prefix="paddler-bench-") as directory:
        made = Cluster(Path(directory), cluster_env(Path(directory)))
        try:
            yield made
        finally:
            made.stop()
