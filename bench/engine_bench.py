"""What the engine benches share: their options, the model setup every side of a comparison
gets, greedy sampling, an engine for the run, a sink recording a generation job, the report.

The engine benches (:mod:`bench.agent_throughput`, :mod:`bench.prompt_cache`,
:mod:`bench.embeddings`) measure the agent's :class:`Engine` directly in this process (no
agent, balancer or network; for those see :mod:`bench.end_to_end`), against baselines in
processes of their own (:mod:`bench.llama_baseline`) with the same model, context size, batch
size and threads. Extra buffer types (weight repacking) are off on every side only where the
agent's probe says they crash on this host.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import RESULTS, extra_buffers_verdict, machine, print_machine, write_document
from paddler_tui.models import default_model_path
from paddler_tui.server.agent.engine.engine import Engine
from paddler_tui.server.agent.engine.model import default_thread_count
from paddler_tui.server.agent.engine.types import (
    EngineEvent,
    EngineSettings,
    JobFailed,
    JobFinished,
    SamplingSettings,
    TokenSampled,
)

# Penalties off, so the engine and llama.cpp both pick the argmax and outputs compare token for
# token.
GREEDY = SamplingSettings(
    temperature=0.0,
    top_k=80,
    top_p=0.8,
    min_p=0.05,
    penalty_last_n=0,
    penalty_repeat=1.0,
    penalty_frequency=0.0,
    penalty_presence=0.0,
)


def chat_prompt(turns: Sequence[tuple[str, str]]) -> str:
    """``(role, content)`` turns in SmolLM2's chat format, then the assistant's turn opened."""
    text = "".join(f"<|im_start|>{role}\n{content}<|im_end|>\n" for role, content in turns)
    return text + "<|im_start|>assistant\n"


def options(
    description: str | None, name: str, *, context_size: int, repeats: int
) -> argparse.ArgumentParser:
    """The options every engine bench takes (the bench adds its own); results go to
    ``bench/results/NAME.json``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--model", default=None, help="GGUF path (default: SmolLM2-135M)")
    parser.add_argument("--threads", type=int, default=default_thread_count())
    parser.add_argument("--context-size", type=int, default=context_size)
    parser.add_argument("--n-batch", type=int, default=2048)
    parser.add_argument(
        "--repeats", type=int, default=repeats, help="rounds of the setups in turn; best counts"
    )
    parser.add_argument("--output", type=Path, default=RESULTS / f"{name}.json")
    return parser


@dataclass(frozen=True)
class BenchModel:
    """The model and llama.cpp setup that every side of a comparison gets."""

    path: str
    threads: int
    context_size: int
    n_batch: int
    extra_buffers: bool
    extra_buffers_reason: str

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> BenchModel:
        path = args.model or str(default_model_path())
        enabled, reason = extra_buffers_verdict(path)
        return cls(path, args.threads, args.context_size, args.n_batch, enabled, reason)

    @property
    def name(self) -> str:
        return Path(self.path).name

    def engine_settings(self, *, slots: int) -> EngineSettings:
        return EngineSettings(
            model_path=self.path,
            slots=slots,
            context_size=self.context_size,
            n_batch=self.n_batch,
            n_threads=self.threads,
            use_extra_buffers=self.extra_buffers,
        )

    def llama_setup(self, *, kv_cache_dtype: str, warm_up: list[str]) -> dict[str, object]:
        """The setup of a :mod:`bench.llama_baseline` ``Llama`` handler."""
        return {
            "model": self.path,
            "context_size": self.context_size,
            "n_batch": self.n_batch,
            "threads": self.threads,
            "kv_cache_dtype": kv_cache_dtype,
            "extra_buffers": self.extra_buffers,
            "warm_up": warm_up,
        }

    def print_header(self, workload: str) -> None:
        """What produced the numbers below: the CPU, the model, the threads, the buffers."""
        print_machine()
        print(f"model {self.name}, {self.threads} threads, {workload}")
        on = "on" if self.extra_buffers else "off"
        print(f"extra buffer types: {on} ({self.extra_buffers_reason})")

    def write_report(self, path: Path, **results: object) -> None:
        """The bench's results file: the machine and this setup, then ``results``."""
        report = {
            "machine": machine(),
            "model": self.name,
            "threads": self.threads,
            "context_size": self.context_size,
            "n_batch": self.n_batch,
            "extra_buffers": {"enabled": self.extra_buffers, "reason": self.extra_buffers_reason},
            **results,
        }
        write_document(path, report)
        print(f"wrote {path}")


@contextlib.contextmanager
def loaded(settings: EngineSettings) -> Iterator[Engine]:
    """An engine for the run, closed (its model freed) on exit."""
    engine = Engine.load(settings)
    try:
        yield engine
    finally:
        engine.close()


@dataclass
class Generation:
    """The sink of one generation job: what the engine thread hands over, recorded, never
    raised there; ``on_end`` runs once, at the job's end."""

    on_end: Callable[[], None]
    pieces: list[str] = field(default_factory=list)
    first_token_at: float | None = None
    ended_at: float | None = None
    end: JobFinished | JobFailed | None = None

    def __call__(self, event: EngineEvent) -> None:
        if isinstance(event, TokenSampled):
            if self.first_token_at is None:
                self.first_token_at = time.perf_counter()
            self.pieces.append(event.piece)
        elif isinstance(event, JobFinished | JobFailed):
            self.ended_at = time.perf_counter()
            self.end = event
            self.on_end()

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    def finished(self) -> JobFinished:
        """How the job finished; a failed (or unended) job fails the bench."""
        if not isinstance(self.end, JobFinished):
            raise RuntimeError(f"bench job failed: {self.end}")
        return self.end
