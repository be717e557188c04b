"""Whether llama.cpp may use its extra buffer types (weight repacking) on this host.

Repacking moves weights into layouts for the host's fastest kernels, a large speed-up for Q4_0
and K-quants on AVX2 and ARM. On some hosts those kernels crash the process (Intel AMX, llama.cpp
issue #20824): a signal, not an error anything could catch. So with ``--extra-buffers auto`` a
child process first loads the model that way and decodes (:mod:`probe`); if the child
dies, the agent loads without extra buffers, as llama-server's ``--no-repack`` does. The verdict
is cached per llama.cpp build, CPU flags and the model's tensor types, so the probe runs once per
host and kind of model.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import platform
import subprocess
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from paddler_tui.paths import cache_dir
from paddler_tui.server.agent.models.gguf_metadata import GgufMetadataError, read_gguf_tensor_types
from paddler_tui.server.process_exit import describe_exit, last_lines

logger = logging.getLogger(__name__)

ExtraBuffersMode = Literal["auto", "on", "off"]
EXTRA_BUFFERS_MODES: tuple[ExtraBuffersMode, ...] = ("auto", "on", "off")

PROBE_TIMEOUT_S = 300.0
PROBE_INCONCLUSIVE = 3  # probe's exit status when the model does not load at all
LOG_TAIL_LINES = 20
NO_REPACK = "loading without them (llama-server's --no-repack)"


@dataclass(frozen=True, slots=True)
class ExtraBuffersVerdict:
    enabled: bool
    reason: str


@dataclass(frozen=True, slots=True)
class ProbeOutcome:
    returncode: int | None  # None: killed after PROBE_TIMEOUT_S
    stderr: str


ProbeRunner = Callable[[Sequence[str]], Awaitable[ProbeOutcome]]
SyncProbeRunner = Callable[[Sequence[str]], ProbeOutcome]


def probe_command(model_path: str, threads: int | None) -> list[str]:
    command = [sys.executable, "-m", "paddler_tui.server.agent.engine.probe", model_path]
    return command if threads is None else [*command, str(threads)]


async def run_probe(command: Sequence[str]) -> ProbeOutcome:
    """Run the probe child; its stderr is kept for the log."""
    process = await asyncio.create_subprocess_exec(
        *command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), PROBE_TIMEOUT_S)
    except TimeoutError:
        process.kill()
        await process.wait()
        return ProbeOutcome(None, "")
    finally:
        if process.returncode is None:  # cancelled: never leave the child behind
            process.kill()
            await process.wait()
    return ProbeOutcome(process.returncode, stderr.decode("utf-8", errors="replace"))


def run_probe_sync(command: Sequence[str]) -> ProbeOutcome:
    """:func:`run_probe` for callers without an event loop."""
    try:
        done = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=PROBE_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:  # run() has killed and reaped the child
        return ProbeOutcome(None, "")
    return ProbeOutcome(done.returncode, done.stderr.decode("utf-8", errors="replace"))


def verdict_from_probe(outcome: ProbeOutcome) -> ExtraBuffersVerdict | None:
    """The verdict a probe's end gives; None if it says nothing about extra buffers."""
    if outcome.returncode == 0:
        return ExtraBuffersVerdict(True, "auto: the probe decoded with extra buffers on this host")
    if outcome.returncode == PROBE_INCONCLUSIVE:
        return None
    if outcome.returncode is None:
        how = f"did not finish within {PROBE_TIMEOUT_S:.0f} s"
    else:
        how = describe_exit(outcome.returncode)
    return ExtraBuffersVerdict(
        False, f"auto: the extra-buffers probe {how} while decoding with them; {NO_REPACK}"
    )


class VerdictCache:
    """Verdicts on disk, one small JSON file per key."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory

    @classmethod
    def default(cls) -> VerdictCache:
        return cls(cache_dir() / "extra-buffers")

    def get(self, key: str) -> ExtraBuffersVerdict | None:
        try:
            data = json.loads((self._directory / f"{key}.json").read_text())
            return ExtraBuffersVerdict(bool(data["enabled"]), str(data["reason"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def put(self, key: str, verdict: ExtraBuffersVerdict) -> None:
        try:
            self._directory.mkdir(parents=True, exist_ok=True)
            path = self._directory / f"{key}.json"
            partial = path.with_suffix(".partial")
            partial.write_text(json.dumps({"enabled": verdict.enabled, "reason": verdict.reason}))
            partial.replace(path)
        except OSError as error:
            logger.warning("cannot cache the extra-buffers verdict: %s", error)


def llama_build() -> str:
    """llama-cpp-python's version and its native libraries' sizes and times, without loading
    them (the probe must not touch llama.cpp in this process)."""
    parts = [importlib.metadata.version("llama_cpp_python")]
    spec = importlib.util.find_spec("llama_cpp")
    for location in (spec.submodule_search_locations or []) if spec else []:
        for library in sorted((Path(location) / "lib").glob("*")):
            stat = library.stat()
            parts.append(f"{library.name}:{stat.st_size}:{stat.st_mtime_ns}")
    return ";".join(parts)


def cpu_flags() -> str:
    """The instruction-set flags llama.cpp chooses its kernels by (x86 flags, ARM features)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            name, _, value = line.partition(":")
            if name.strip() in ("flags", "Features"):
                return " ".join(sorted(value.split()))
    except OSError:
        pass
    return f"{platform.machine()} {platform.processor()}"


def verdict_key(model_path: str) -> str | None:
    """What a verdict depends on, hashed; None if the model's tensors cannot be read."""
    try:
        tensor_types = sorted(read_gguf_tensor_types(model_path))
    except (OSError, GgufMetadataError):
        return None
    facts = {"llama": llama_build(), "cpu": cpu_flags(), "tensor_types": tensor_types}
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:32]


async def decide_extra_buffers(
    mode: ExtraBuffersMode,
    model_path: str,
    *,
    threads: int | None,
    cache: VerdictCache,
    probe: ProbeRunner = run_probe,
) -> ExtraBuffersVerdict:
    """The verdict for loading ``model_path``; with ``auto`` the probe runs unless cached."""
    settled, key = _settled(mode, model_path, cache)
    if settled is not None:
        return settled
    logger.info("probing llama.cpp's extra buffers on this host with %s", model_path)
    return _conclude(await probe(probe_command(model_path, threads)), key, cache)


def decide_extra_buffers_sync(
    mode: ExtraBuffersMode,
    model_path: str,
    *,
    threads: int | None,
    cache: VerdictCache,
    probe: SyncProbeRunner = run_probe_sync,
) -> ExtraBuffersVerdict:
    """:func:`decide_extra_buffers` for callers without an event loop."""
    settled, key = _settled(mode, model_path, cache)
    if settled is not None:
        return settled
    logger.info("probing llama.cpp's extra buffers on this host with %s", model_path)
    return _conclude(probe(probe_command(model_path, threads)), key, cache)


def probe_verdict_sync(model_path: str, *, threads: int | None = None) -> ExtraBuffersVerdict:
    """The ``auto`` verdict for this host, from the cache or a probe: what an engine loaded
    without an explicit choice uses, and the benches too."""
    return decide_extra_buffers_sync(
        "auto", model_path, threads=threads, cache=VerdictCache.default()
    )


def _settled(
    mode: ExtraBuffersMode, model_path: str, cache: VerdictCache
) -> tuple[ExtraBuffersVerdict | None, str | None]:
    """The verdict if no probe is needed (a fixed mode, or a cached one); the cache key."""
    if mode != "auto":
        return ExtraBuffersVerdict(mode == "on", f"{mode} (--extra-buffers {mode})"), None
    key = verdict_key(model_path)
    return (cache.get(key) if key is not None else None), key


def _conclude(outcome: ProbeOutcome, key: str | None, cache: VerdictCache) -> ExtraBuffersVerdict:
    verdict = verdict_from_probe(outcome)
    if verdict is None:
        # The model does not load at all; the real load says why. Nothing to remember.
        return ExtraBuffersVerdict(True, "auto: the probe could not load the model")
    if not verdict.enabled:
        logger.warning(
            "%s; the probe's last lines:\n%s",
            verdict.reason,
            last_lines(outcome.stderr, LOG_TAIL_LINES),
        )
    if key is not None:
        cache.put(key, verdict)
    return verdict
