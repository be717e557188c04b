"""Embedding jobs on the real engine: packing, pooling, oversized documents, stops, conflicts."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path

import llama_cpp
import pytest

from paddler_tui.server.agent.engine.engine import Engine
from paddler_tui.server.agent.engine.types import EmbeddingsFinished, EngineSettings, JobFailed
from tests.agent.engine_helpers import ENDLESS, chat, embed, finished, model_path, submit
from tests.agent.gguf_files import copy_gguf

N_BATCH = 64
DOCUMENTS = [
    (f"doc-{index}", f"Document {index} talks about topic {index}.") for index in range(12)
]
HUGE = "This sentence repeats to make a document longer than one batch. " * 40


def embeddings_engine(pooling: str = "Mean", *, slots: int = 4) -> Engine:
    return Engine.load(
        EngineSettings(
            model_path=model_path(),
            slots=slots,
            context_size=2048,
            n_batch=N_BATCH,
            enable_embeddings=True,
            pooling_type=pooling,
        )
    )


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    loaded = embeddings_engine()
    yield loaded
    loaded.close()


def finished_embedding(collector_terminal: EmbeddingsFinished | JobFailed) -> EmbeddingsFinished:
    assert isinstance(collector_terminal, EmbeddingsFinished), collector_terminal
    return collector_terminal


def test_every_document_is_embedded_in_token_order(engine: Engine) -> None:
    collector = embed(engine, DOCUMENTS)
    assert finished_embedding(collector.wait()).embedded == 12
    by_tokens = sorted(
        DOCUMENTS, key=lambda item: engine.tokenize(item[1], add_bos=True, parse_special=False)
    )
    assert list(collector.vectors) == [document_id for document_id, _ in by_tokens]
    assert {len(vector) for vector in collector.vectors.values()} == {576}
    assert len(set(map(tuple, collector.vectors.values()))) == 12
    assert engine.slots_processing == 0


def test_identical_documents_and_batch_neighbours_do_not_change_a_vector(engine: Engine) -> None:
    text = "The quick brown fox jumps over the lazy dog."
    twins = embed(engine, [("a", text), ("b", text)])
    twins.wait()
    assert twins.vectors["a"] == twins.vectors["b"]
    alone = embed(engine, [("alone", text)])
    alone.wait()
    crowd = embed(engine, [*DOCUMENTS[:7], ("in-crowd", text)])
    crowd.wait()
    difference = max(
        abs(x - y) for x, y in zip(alone.vectors["alone"], crowd.vectors["in-crowd"], strict=True)
    )
    assert difference < 1e-5


INSTRUCTION = "Represent this sentence for searching relevant passages about the weather: "
PREFIXED = [
    (f"p{index}", INSTRUCTION + text)
    for index, text in enumerate(["Is it raining?", "Snow tomorrow", "Is it windy?", "Sunny"])
]


Vectors = dict[str, list[float]]


def decoded_tokens(engine: Engine, job: list[tuple[str, str]]) -> tuple[int, Vectors]:
    """How many tokens llama.cpp decoded for one embedding job, and the job's vectors."""
    ctx = engine._model.ctx  # llama.cpp's own counter is the proof
    llama_cpp.llama_perf_context_reset(ctx)
    collector = embed(engine, job)
    finished_embedding(collector.wait())
    return llama_cpp.llama_perf_context(ctx).n_p_eval, collector.vectors


def embed_prefixed(engine: Engine) -> tuple[int, list[int]]:
    """Tokens decoded for PREFIXED in one job and each document's token count; checks that
    every vector equals the document's vector embedded alone."""
    try:
        decoded, together = decoded_tokens(engine, PREFIXED)
        alone = {key: decoded_tokens(engine, [(key, text)])[1][key] for key, text in PREFIXED}
        lengths = [
            len(engine.tokenize(text, add_bos=True, parse_special=False)) for _, text in PREFIXED
        ]
    finally:
        engine.close()
    for key, vector in together.items():
        assert max(abs(x - y) for x, y in zip(vector, alone[key], strict=True)) < 1e-5
    return decoded, lengths


@pytest.mark.parametrize("pooling", ["Mean", "Last", "Cls"])
def test_a_shared_prefix_is_decoded_once_and_changes_no_vector(pooling: str) -> None:
    engine = embeddings_engine(pooling)
    prefix = len(engine.tokenize(INSTRUCTION, add_bos=True, parse_special=False)) - 1
    decoded, lengths = embed_prefixed(engine)
    assert decoded <= sum(lengths) - 3 * prefix  # the instruction once, not four times


def test_a_bidirectional_model_decodes_every_document_whole(tmp_path: Path) -> None:
    path = tmp_path / "bidirectional.gguf"
    copy_gguf(Path(model_path()), path, add_bools={"llama.attention.causal": False})
    engine = Engine.load(
        EngineSettings(
            model_path=str(path),
            slots=4,
            context_size=2048,
            n_batch=N_BATCH,
            enable_embeddings=True,
            pooling_type="Mean",
        )
    )
    decoded, lengths = embed_prefixed(engine)
    assert decoded == sum(lengths)


def test_an_oversized_document_is_reported_and_the_others_embedded(engine: Engine) -> None:
    collector = embed(engine, [("tiny", "tiny"), ("huge", HUGE), ("small", "small")])
    assert finished_embedding(collector.wait()).embedded == 2
    assert sorted(collector.vectors) == ["small", "tiny"]
    [too_long] = collector.too_long
    assert (too_long.document_id, too_long.n_batch) == ("huge", N_BATCH)
    assert too_long.tokens == len(engine.tokenize(HUGE, add_bos=True, parse_special=False))


def test_only_oversized_documents_embed_nothing(engine: Engine) -> None:
    collector = embed(engine, [("one", HUGE), ("two", HUGE)])
    assert finished_embedding(collector.wait()).embedded == 0
    assert [event.document_id for event in collector.too_long] == ["one", "two"]


def test_an_empty_document_fails_the_job(engine: Engine) -> None:
    terminal = embed(engine, [("full", "text"), ("empty", "")]).wait()
    assert isinstance(terminal, JobFailed)
    assert (terminal.kind, terminal.message) == (
        "internal",
        "document 'empty' has no tokens to embed",
    )


def test_a_stop_takes_effect_between_batches(engine: Engine) -> None:
    documents = [(f"d{index}", f"Short document {index}.") for index in range(40)]
    collector = embed(engine, documents, job_id="stopped")
    collector.on_embedded = lambda: engine.stop("stopped")
    embedded = finished_embedding(collector.wait()).embedded
    assert embedded == len(collector.vectors) == engine.slots  # the first batch only


def test_generation_first_means_the_embedding_is_rejected(engine: Engine) -> None:
    generating = submit(engine, ENDLESS, max_tokens=500, job_id="generating")
    assert generating.first_token.wait(30)
    terminal = embed(engine, DOCUMENTS[:2]).wait()
    engine.stop("generating")
    finished(generating)
    assert isinstance(terminal, JobFailed)
    assert terminal.kind == "generation_active"


def test_an_embedding_batch_invalidates_the_prompt_cache(engine: Engine) -> None:
    prompt = chat("Name a color.")
    first = submit(engine, prompt, max_tokens=6)
    finished(first)
    embed(engine, DOCUMENTS[:4]).wait()  # clears the KV cache of every sequence
    again = submit(engine, prompt, max_tokens=6)
    assert finished(again).cached_prompt_tokens == 0
    assert again.tokens == first.tokens


def test_an_embeddings_disabled_engine_refuses() -> None:
    plain = Engine.load(EngineSettings(model_path=model_path(), slots=1, context_size=256))
    try:
        terminal = embed(plain, DOCUMENTS[:1]).wait()
    finally:
        plain.close()
    assert isinstance(terminal, JobFailed)
    assert terminal.kind == "embeddings_disabled"


def test_pooling_none_gives_no_document_embedding() -> None:
    unpooled = embeddings_engine("None", slots=1)
    try:
        terminal = embed(unpooled, DOCUMENTS[:1]).wait()
    finally:
        unpooled.close()
    assert isinstance(terminal, JobFailed)
    assert terminal.message == "the pooling type None gives no embedding per document"


@pytest.mark.parametrize("pooling", ["Last", "Cls"])
def test_other_poolings_embed(pooling: str) -> None:
    pooled = embeddings_engine(pooling, slots=2)
    try:
        collector = embed(pooled, DOCUMENTS[:3])
        assert finished_embedding(collector.wait()).embedded == 3
    finally:
        pooled.close()
    assert all(math.isfinite(value) for vector in collector.vectors.values() for value in vector)


def test_close_ends_a_queued_embedding_job() -> None:
    closing = embeddings_engine(slots=1)
    documents = [(f"d{index}", f"Document {index}.") for index in range(400)]
    collector = embed(closing, documents)
    started = time.monotonic()
    closing.close()
    assert time.monotonic() - started < 5
    assert finished_embedding(collector.wait()).embedded < 400
