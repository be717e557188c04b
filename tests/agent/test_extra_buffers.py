"""Deciding llama.cpp's extra buffers per host: the decision logic with fake probe programs
(real child processes that crash, fail or hang on purpose), and one real probe that runs on
whatever host the tests run on."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import llama_cpp
import pytest

from paddler_tui.models import default_model_path
from paddler_tui.server.agent.engine import extra_buffers
from paddler_tui.server.agent.engine.engine import Engine
from paddler_tui.server.agent.engine.extra_buffers import (
    ExtraBuffersMode,
    ExtraBuffersVerdict,
    ProbeOutcome,
    VerdictCache,
    decide_extra_buffers,
    decide_extra_buffers_sync,
    probe_command,
    run_probe,
    run_probe_sync,
    verdict_from_probe,
    verdict_key,
)
from paddler_tui.server.agent.engine.types import EngineSettings
from paddler_tui.server.process_exit import describe_exit

MODEL = str(default_model_path())


def fake_probe(source: str) -> list[str]:
    """A probe program standing in for probe: a Python one-liner."""
    return [sys.executable, "-c", source]


SEGFAULT = fake_probe(
    "import os, signal, sys; print('decoding with AMX', file=sys.stderr, flush=True); "
    "os.kill(os.getpid(), signal.SIGSEGV)"
)
ILLEGAL = fake_probe("import os, signal; os.kill(os.getpid(), signal.SIGILL)")
FAILS = fake_probe("raise SystemExit(1)")
PASSES = fake_probe("pass")
INCONCLUSIVE = fake_probe("raise SystemExit(3)")
HANGS = fake_probe("import time; time.sleep(60)")


class Probes:
    """A probe runner that runs a fixed program instead of the real probe, and counts calls."""

    def __init__(self, program: list[str]) -> None:
        self.program = program
        self.commands: list[Sequence[str]] = []

    async def __call__(self, command: Sequence[str]) -> ProbeOutcome:
        self.commands.append(command)
        return await run_probe(self.program)


@pytest.fixture
def cache(tmp_path: Path) -> VerdictCache:
    return VerdictCache(tmp_path / "verdicts")


@pytest.mark.parametrize("mode", ["on", "off"])
async def test_on_and_off_never_probe(mode: ExtraBuffersMode, cache: VerdictCache) -> None:
    probes = Probes(SEGFAULT)
    verdict = await decide_extra_buffers(
        mode,
        MODEL,
        threads=None,
        cache=cache,
        probe=probes,
    )
    assert verdict == ExtraBuffersVerdict(mode == "on", f"{mode} (--extra-buffers {mode})")
    assert probes.commands == []


@pytest.mark.parametrize(
    ("program", "cause"),
    [(SEGFAULT, "killed by SIGSEGV"), (ILLEGAL, "killed by SIGILL"), (FAILS, "status 1")],
)
async def test_a_probe_that_dies_turns_extra_buffers_off_with_the_cause(
    program: list[str], cause: str, cache: VerdictCache, caplog: pytest.LogCaptureFixture
) -> None:
    probes = Probes(program)
    verdict = await decide_extra_buffers("auto", MODEL, threads=2, cache=cache, probe=probes)
    assert not verdict.enabled
    assert cause in verdict.reason
    assert "--no-repack" in verdict.reason
    assert probes.commands == [probe_command(MODEL, 2)]
    # The log names the cause, and shows what the probe printed before it died.
    assert cause in caplog.text
    if program is SEGFAULT:
        assert "decoding with AMX" in caplog.text


async def test_a_verdict_is_probed_once_then_cached(cache: VerdictCache) -> None:
    crashing = Probes(SEGFAULT)
    first = await decide_extra_buffers("auto", MODEL, threads=None, cache=cache, probe=crashing)
    passing = Probes(PASSES)
    second = await decide_extra_buffers("auto", MODEL, threads=None, cache=cache, probe=passing)
    assert second == first
    assert passing.commands == []


async def test_a_passing_probe_keeps_extra_buffers_on(cache: VerdictCache) -> None:
    verdict = await decide_extra_buffers(
        "auto", MODEL, threads=None, cache=cache, probe=Probes(PASSES)
    )
    assert verdict.enabled
    assert "probe decoded" in verdict.reason


async def test_a_model_that_does_not_load_decides_nothing(cache: VerdictCache) -> None:
    probes = Probes(INCONCLUSIVE)
    verdict = await decide_extra_buffers("auto", MODEL, threads=None, cache=cache, probe=probes)
    assert verdict.enabled  # the real load reports why the model does not load
    await decide_extra_buffers("auto", MODEL, threads=None, cache=cache, probe=probes)
    assert len(probes.commands) == 2  # not cached


async def test_a_probe_that_hangs_is_killed_and_counts_as_a_crash(
    cache: VerdictCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(extra_buffers, "PROBE_TIMEOUT_S", 0.5)
    verdict = await decide_extra_buffers(
        "auto", MODEL, threads=None, cache=cache, probe=Probes(HANGS)
    )
    assert not verdict.enabled
    assert "did not finish" in verdict.reason


def test_the_key_follows_cpu_flags_llama_build_and_tensor_types(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    key = verdict_key(MODEL)
    assert key is not None and key == verdict_key(MODEL)
    monkeypatch.setattr(extra_buffers, "cpu_flags", lambda: "avx2 amx_int8")
    with_amx = verdict_key(MODEL)
    assert with_amx != key
    monkeypatch.setattr(extra_buffers, "llama_build", lambda: "another build")
    assert verdict_key(MODEL) not in (key, with_amx)
    assert verdict_key(str(tmp_path / "missing.gguf")) is None


async def test_an_unreadable_model_is_probed_every_time(
    cache: VerdictCache, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"not a gguf")
    probes = Probes(PASSES)
    for _ in range(2):
        await decide_extra_buffers("auto", str(broken), threads=None, cache=cache, probe=probes)
    assert len(probes.commands) == 2


def test_a_damaged_cache_entry_is_ignored(cache: VerdictCache, tmp_path: Path) -> None:
    cache.put("key", ExtraBuffersVerdict(False, "because"))
    assert cache.get("key") == ExtraBuffersVerdict(False, "because")
    (tmp_path / "verdicts" / "key.json").write_text("{not json")
    assert cache.get("key") is None


def test_exit_causes_read_as_words() -> None:
    assert describe_exit(-11) == "killed by SIGSEGV"
    assert describe_exit(-9) == "killed by SIGKILL"
    assert describe_exit(2) == "exited with status 2"
    assert describe_exit(-200) == "killed by signal 200"
    assert verdict_from_probe(ProbeOutcome(3, "")) is None


async def test_the_real_probe_reaches_a_verdict_on_this_host() -> None:
    """Runs everywhere: the real probe child ends, and its verdict is one the agent can load
    with (a crash here would be reported as off, never passed in silence)."""
    outcome = await run_probe(probe_command(MODEL, None))
    verdict = verdict_from_probe(outcome)
    assert verdict is not None, outcome.stderr
    assert outcome.returncode is not None
    assert verdict.enabled == (outcome.returncode == 0), outcome.stderr


def test_the_sync_decision_turns_extra_buffers_off_when_the_probe_crashes(
    cache: VerdictCache,
) -> None:
    commands: list[Sequence[str]] = []

    def probe(command: Sequence[str]) -> ProbeOutcome:
        commands.append(command)
        return run_probe_sync(SEGFAULT)

    verdict = decide_extra_buffers_sync("auto", MODEL, threads=None, cache=cache, probe=probe)
    assert not verdict.enabled
    assert "killed by SIGSEGV" in verdict.reason
    assert commands == [probe_command(MODEL, None)]
    assert decide_extra_buffers_sync("auto", MODEL, threads=None, cache=cache) == verdict


def test_an_engine_loaded_without_a_choice_follows_the_hosts_verdict(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A library user's engine never repacks where this host's verdict says it crashes."""
    monkeypatch.setenv("PADDLER_TUI_CACHE_DIR", str(tmp_path))
    key = verdict_key(MODEL)
    assert key is not None
    VerdictCache.default().put(key, ExtraBuffersVerdict(False, "auto: crashed here"))
    asked: list[bool] = []
    real = llama_cpp.llama_model_load_from_file

    def load(path: bytes, params: Any) -> Any:
        asked.append(bool(params.use_extra_bufts))
        return real(path, params)

    monkeypatch.setattr(llama_cpp, "llama_model_load_from_file", load)
    engine = Engine.load(EngineSettings(model_path=MODEL, slots=1, context_size=256))
    try:
        assert engine.settings.use_extra_buffers is False
    finally:
        engine.close()
    assert asked == [False]
