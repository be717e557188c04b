"""The inference engine on real llama.cpp with the real SmolLM2-135M model (no fakes)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from paddler_tui.protocol.generated_token import TokenKind
from paddler_tui.server.agent.engine.engine import Engine
from paddler_tui.server.agent.engine.thread import THREAD_NAME
from paddler_tui.server.agent.engine.types import (
    EVICTED_MESSAGE,
    NO_FREE_SLOT_MESSAGE,
    Delivery,
    EngineClosedError,
    EngineEvent,
    EngineLoadError,
    EngineSettings,
    GenerationJob,
    JobFailed,
    JobFinished,
    TokenSampled,
    deliver_in_place,
)
from paddler_tui.server.agent.output.token_classifier import Classified, Output
from tests.agent.engine_helpers import (
    ENDLESS,
    GREEDY,
    SAMPLED,
    WAIT_S,
    Collector,
    chat,
    finished,
    model_path,
    submit,
)


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    loaded = Engine.load(EngineSettings(model_path=model_path(), slots=4, context_size=2048))
    yield loaded
    loaded.close()


def test_model_facts(engine: Engine) -> None:
    assert engine.slots == 4
    assert engine.n_ctx == 2048
    assert engine.chat_template is not None and "im_start" in engine.chat_template
    assert engine.metadata["general.architecture"] == "llama"
    assert engine.metadata["tokenizer.chat_template"] == engine.chat_template
    assert list(engine.metadata) == sorted(engine.metadata)
    assert (engine.bos_token, engine.eos_token) == ("<|im_start|>", "<|im_end|>")
    assert engine.slots_processing == 0


def test_raw_prompt_stops_at_max_tokens(engine: Engine) -> None:
    collector = submit(engine, chat("Hi"), max_tokens=5)
    terminal = finished(collector)
    prompt_tokens = len(engine.tokenize(chat("Hi"), add_bos=True, parse_special=True))
    assert len(collector.tokens) == 5
    assert terminal.reason == "max_tokens"
    assert terminal.generated_tokens == 5
    assert terminal.prompt_tokens == prompt_tokens > 0
    assert collector.text == engine.detokenize(collector.tokens)


def test_concurrent_greedy_jobs_match_solo_runs(engine: Engine) -> None:
    prompts = [
        chat("What is the capital of France?"),
        chat("Write a poem about the sea."),
        chat("List three colors, then explain why the sky is blue in two long sentences."),
        "Once upon a time, in a small village by the mountains,",
    ]
    together = [
        submit(engine, prompt, max_tokens=24, job_id=f"together-{index}")
        for index, prompt in enumerate(prompts)
    ]
    for collector in together:
        finished(collector)
    for index, prompt in enumerate(prompts):
        alone = submit(engine, prompt, max_tokens=24, job_id=f"alone-{index}")
        finished(alone)
        assert alone.tokens == together[index].tokens, index
    assert len({tuple(c.tokens) for c in together}) == 4


def test_prompt_chunks_interleaved_with_generation_match_solo_runs() -> None:
    # A tiny batch budget makes a long prompt take several steps, each shared with the tokens
    # of a job that is already generating.
    engine = Engine.load(
        EngineSettings(model_path=model_path(), slots=2, context_size=1024, n_batch=32)
    )
    try:
        long_prompt = chat("Explain photosynthesis in detail, with examples. " * 12)
        short_prompt = chat("Tell me a joke about cats.")
        solo_long = submit(engine, long_prompt, max_tokens=16)
        finished(solo_long)
        solo_short = submit(engine, short_prompt, max_tokens=40)
        finished(solo_short)
        engine.close()
        engine = Engine.load(
            EngineSettings(model_path=model_path(), slots=2, context_size=1024, n_batch=32)
        )
        short = submit(engine, short_prompt, max_tokens=40)
        assert short.first_token.wait(WAIT_S)
        long = submit(engine, long_prompt, max_tokens=16)
        assert finished(long).cached_prompt_tokens == 0
        finished(short)
        assert len(engine.tokenize(long_prompt, add_bos=True, parse_special=True)) > 3 * 32
        assert (long.tokens, short.tokens) == (solo_long.tokens, solo_short.tokens)
    finally:
        engine.close()


def test_stop_after_first_token_frees_the_slot(engine: Engine) -> None:
    collector = Collector()
    tokens = engine.tokenize(ENDLESS, add_bos=True, parse_special=True)

    def sink(event: EngineEvent) -> None:
        if isinstance(event, TokenSampled) and not collector.tokens:
            engine.stop("stopped-job")
        collector(event)

    engine.submit(
        GenerationJob(job_id="stopped-job", prompt_tokens=tokens, max_tokens=500, sampling=GREEDY),
        sink,
    )
    terminal = finished(collector)
    assert terminal.reason == "stopped"
    assert terminal.generated_tokens == len(collector.tokens) == 1
    assert terminal.prompt_tokens == len(tokens)
    assert engine.slots_processing == 0
    assert finished(submit(engine, chat("Hi"), max_tokens=3)).reason == "max_tokens"


def test_stopping_an_unknown_job_is_harmless(engine: Engine) -> None:
    engine.stop("no-such-job")
    assert finished(submit(engine, chat("Hi"), max_tokens=2)).generated_tokens == 2


def test_prompt_cache_reuses_a_repeated_prompt(engine: Engine) -> None:
    prompt = chat("Name a famous painter and one of their paintings.")
    first = submit(engine, prompt, max_tokens=12)
    first_end = finished(first)
    second = submit(engine, prompt, max_tokens=12)
    second_end = finished(second)
    assert second.tokens == first.tokens
    assert second_end.prompt_tokens == first_end.prompt_tokens
    # Everything but the last prompt token, which is decoded again for its logits.
    assert second_end.cached_prompt_tokens == second_end.prompt_tokens - 1


def test_prompt_cache_reuses_the_prefix_of_an_extended_prompt(engine: Engine) -> None:
    first_prompt = chat("Tell me about owls.")
    first_length = len(engine.tokenize(first_prompt, add_bos=True, parse_special=True))
    finished(submit(engine, first_prompt, max_tokens=8))
    extended = first_prompt + "Owls are birds.<|im_end|>\n" + chat("And about cats?")
    end = finished(submit(engine, extended, max_tokens=8))
    assert first_length <= end.cached_prompt_tokens < end.prompt_tokens


def test_end_of_generation_is_not_emitted(engine: Engine) -> None:
    collector = submit(engine, chat("What is the capital of France?"), max_tokens=200)
    terminal = finished(collector)
    assert terminal.reason == "eog"
    assert 0 < terminal.generated_tokens == len(collector.tokens) < 200
    assert "Paris" in collector.text
    assert "<|im_end|>" not in collector.text
    assert not {0, 2, 4} & set(collector.tokens)  # SmolLM2's EOG tokens


def test_max_tokens_zero_finishes_without_tokens(engine: Engine) -> None:
    collector = submit(engine, chat("Hi"), max_tokens=0)
    terminal = finished(collector)
    assert (terminal.reason, terminal.generated_tokens, collector.tokens) == ("max_tokens", 0, [])


def test_more_jobs_than_slots_fails_the_extra_one(engine: Engine) -> None:
    collectors = [
        submit(engine, ENDLESS, max_tokens=40, job_id=f"busy-{index}") for index in range(5)
    ]
    terminals = [collector.wait() for collector in collectors]
    failed = [t for t in terminals if isinstance(t, JobFailed)]
    assert [(t.job_id, t.kind, t.message) for t in failed] == [
        ("busy-4", "sampler", NO_FREE_SLOT_MESSAGE)
    ]
    assert all(t.generated_tokens == 40 for t in terminals if isinstance(t, JobFinished))
    assert engine.slots_processing == 0


def test_multibyte_characters_arrive_whole(engine: Engine) -> None:
    collector = submit(engine, chat("Repeat exactly: 😀🎉🚀 日本語"), max_tokens=20)
    finished(collector)
    assert collector.text == engine.detokenize(collector.tokens)
    assert "\ufffd" not in collector.text
    assert any(ord(char) > 0xFFFF for char in collector.text)


def test_sampled_generation_with_a_seed_is_reproducible(engine: Engine) -> None:
    runs = [submit(engine, chat("Tell me a story."), max_tokens=16, sampling=SAMPLED)]
    runs.append(submit(engine, chat("Tell me a story."), max_tokens=16, sampling=SAMPLED))
    assert [finished(run).generated_tokens for run in runs] == [16, 16]
    assert runs[0].tokens == runs[1].tokens


def test_grammar_constrains_the_output(engine: Engine) -> None:
    collector = submit(
        engine,
        chat("Is the sky blue? Answer yes or no."),
        max_tokens=20,
        grammar=('root ::= "yes" | "no"', "root"),
    )
    assert finished(collector).reason == "eog"
    assert collector.text in {"yes", "no"}


def test_a_grammar_without_its_root_rule_fails(engine: Engine) -> None:
    collector = submit(engine, chat("Hi"), max_tokens=5, grammar=('root ::= "yes"', "start"))
    terminal = collector.wait()
    assert isinstance(terminal, JobFailed)
    assert terminal.kind == "grammar_init"
    assert "grammar" in terminal.message


def test_kv_cache_pressure_evicts_without_hanging() -> None:
    engine = Engine.load(
        EngineSettings(model_path=model_path(), slots=1, context_size=256, n_batch=256)
    )
    try:
        # A long prompt leaves little room, so the overflow comes after a few dozen tokens.
        prompt = "Numbers: " + ", ".join(str(n) for n in range(60)) + ","
        collector = submit(engine, prompt, max_tokens=4096)
        terminal = collector.wait()
        assert isinstance(terminal, JobFailed)
        assert (terminal.kind, terminal.message) == ("evicted", EVICTED_MESSAGE)
        assert collector.tokens  # it generated until the sequence was full
        # A prompt larger than the whole context is evicted at once.
        huge = submit(engine, "word " * 400, max_tokens=5)
        terminal = huge.wait()
        assert isinstance(terminal, JobFailed)
        assert terminal.kind == "evicted"
        assert huge.tokens == []
        # The engine still works, and the evicted slot no longer offers a stale cache.
        after = finished(submit(engine, chat("Hi"), max_tokens=3))
        assert (after.generated_tokens, after.cached_prompt_tokens) == (3, 0)
        assert engine.slots_processing == 0
    finally:
        engine.close()


def test_close_mid_generation_returns_quickly() -> None:
    engine = Engine.load(EngineSettings(model_path=model_path(), slots=2, context_size=2048))
    collector = submit(engine, ENDLESS, max_tokens=4096)
    assert collector.first_token.wait(WAIT_S)
    engine.close()
    terminal = collector.wait()
    assert isinstance(terminal, JobFinished)
    assert terminal.reason == "stopped"
    # Closing cut the job short instead of waiting for its 4096 tokens.
    assert terminal.generated_tokens < 200
    with pytest.raises(EngineClosedError):
        engine.tokenize("Hi", add_bos=True, parse_special=True)
    late = Collector()
    engine.submit(
        GenerationJob(job_id="late", prompt_tokens=[1], max_tokens=3, sampling=GREEDY), late
    )
    assert isinstance(late.wait(), JobFailed)
    assert engine.slots_processing == 0
    engine.close()  # idempotent


def test_missing_model_file_cannot_be_loaded(tmp_path: Path) -> None:
    with pytest.raises(EngineLoadError) as raised:
        Engine.load(EngineSettings(model_path=str(tmp_path / "absent.gguf"), slots=1))
    assert raised.value.kind == "model_cannot_be_loaded"


@pytest.mark.parametrize(
    "content", [b"not a model at all" * 100, b"GGUF\x03\x00\x00\x00" + b"\xff" * 64]
)
def test_garbage_file_cannot_be_loaded(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "garbage.gguf"
    path.write_bytes(content)
    with pytest.raises(EngineLoadError) as raised:
        Engine.load(EngineSettings(model_path=str(path), slots=1))
    assert raised.value.kind == "model_cannot_be_loaded"
    assert str(path) in raised.value.message


def test_impossible_context_cannot_start() -> None:
    with pytest.raises(EngineLoadError) as raised:
        Engine.load(EngineSettings(model_path=model_path(), slots=1000))
    assert raised.value.kind == "slot_cannot_start"


class EveryOtherIsAToolCall:
    """A token meter that classifies every other token as a tool call."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def feed(self, piece: str) -> Classified:
        self.seen.append(piece)
        kind: TokenKind = "content" if len(self.seen) % 2 == 1 else "tool_call"
        return Classified(kind, ())

    def finish(self) -> tuple[Output, ...]:
        return ()


def test_tokens_that_do_not_count_do_not_use_up_max_tokens(engine: Engine) -> None:
    meter = EveryOtherIsAToolCall()
    collector = submit(engine, ENDLESS, max_tokens=4, classifier=meter)
    terminal = finished(collector)
    assert (terminal.reason, terminal.generated_tokens) == ("max_tokens", 7)
    assert meter.seen == collector.pieces
    # Each token travels with its classification.
    assert collector.classified == [
        Classified("content" if i % 2 == 0 else "tool_call", ()) for i in range(7)
    ]


def test_prompt_cache_reuse_gives_the_output_of_a_run_without_it(engine: Engine) -> None:
    without = Engine.load(
        EngineSettings(model_path=model_path(), slots=1, context_size=512, reuse_prompt_cache=False)
    )
    try:
        prompt = chat("Name a planet.")
        previous: list[int] = []  # the tokens of the previous turn's prompt
        for turn in range(3):
            reused = submit(engine, prompt, max_tokens=10, job_id=f"reused-{turn}")
            fresh = submit(without, prompt, max_tokens=10, job_id=f"fresh-{turn}")
            reused_end, fresh_end = finished(reused), finished(fresh)
            assert reused.tokens == fresh.tokens, turn
            assert fresh_end.cached_prompt_tokens == 0
            assert reused_end.cached_prompt_tokens >= len(previous) - 1
            previous = engine.tokenize(prompt, add_bos=True, parse_special=True)
            prompt += reused.text + "<|im_end|>\n" + chat(f"And planet number {turn + 2}?")
    finally:
        without.close()


def test_a_step_delivers_its_events_at_once_from_the_loading_thread() -> None:
    deliveries: list[tuple[str, Delivery]] = []

    def deliver(delivery: Delivery) -> None:
        deliveries.append((threading.current_thread().name, delivery))
        deliver_in_place(delivery)

    engine = Engine.load(
        EngineSettings(model_path=model_path(), slots=2, context_size=512), deliver=deliver
    )
    try:
        first = submit(engine, ENDLESS, max_tokens=8, job_id="a")
        second = submit(engine, ENDLESS, max_tokens=8, job_id="b")
        finished(first)
        finished(second)
    finally:
        engine.close()
    assert sum(len(delivery) for _, delivery in deliveries) == 2 * (8 + 1)
    # Once both jobs generate, each step hands over one token of each in a single delivery.
    assert any(
        sorted(event.job_id for _, event in delivery) == ["a", "b"]
        and all(isinstance(event, TokenSampled) for _, event in delivery)
        for _, delivery in deliveries
    )
    assert {name for name, _ in deliveries} == {THREAD_NAME}
