"""The prompt cache in host memory on the real engine: sequence states saved when a slot is taken
and restored for a prompt that shares more with them than with any free slot."""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import llama_cpp
import pytest

from paddler_tui.server.agent.engine.engine import Engine
from paddler_tui.server.agent.engine.token_prefixes import common_prefix_length
from paddler_tui.server.agent.engine.types import (
    UNLIMITED_PROMPT_CACHE,
    EngineSettings,
    JobFinished,
    PromptCacheUsage,
)
from tests.agent.engine_helpers import chat, embed, finished, model_path, submit

NOTES = (
    "Here are my notes about {topic}. I have been reading about {topic} for a while and I find "
    "{topic} fascinating: their history, how they work, and why they matter to people. Please "
    "give me one surprising fact about {topic} that I could open a short talk with."
)
# A raw story opening that differs from the others only in its number, so every one of them
# tokenizes to as many tokens and saves a state of the same size.
STORY = (
    "Story number {number}. The old lighthouse keeper climbed the stairs every evening, counted "
    "the ships on the horizon, wrote their names in a worn notebook, listened to the wind "
    "rattle the windows of the lamp room, and waited for the fog to roll in from the sea. One "
    "night, a small boat without lights drifted toward the rocks, and"
)


def one_slot(**settings: Any) -> Engine:
    return Engine.load(
        EngineSettings(model_path=model_path(), slots=1, context_size=2048, **settings)
    )


@pytest.fixture(scope="module")
def uncached() -> Iterator[Engine]:
    """Decodes every prompt whole: the outputs every cache must reproduce."""
    engine = one_slot(reuse_prompt_cache=False)
    yield engine
    engine.close()


@dataclass
class StateCalls:
    """The calls that save and restore sequence states, made through llama.cpp."""

    saved: int = 0
    restored: int = 0

    def watch(self, monkeypatch: pytest.MonkeyPatch) -> None:
        save, restore = llama_cpp.llama_state_seq_get_data, llama_cpp.llama_state_seq_set_data

        def counting_save(*args: Any) -> Any:
            self.saved += 1
            return save(*args)

        def counting_restore(*args: Any) -> Any:
            self.restored += 1
            return restore(*args)

        monkeypatch.setattr(llama_cpp, "llama_state_seq_get_data", counting_save)
        monkeypatch.setattr(llama_cpp, "llama_state_seq_set_data", counting_restore)


@dataclass
class Interrupted:
    """A conversation's second turn, sent after another conversation took its only slot."""

    first_prompt_tokens: int
    second: JobFinished
    answers: tuple[list[int], list[int], list[int]]  # first turn, the other, second turn


def interrupted_conversation(engine: Engine) -> Interrupted:
    first_prompt = chat(NOTES.format(topic="lighthouses"))
    first = submit(engine, first_prompt, max_tokens=12, job_id="first")
    first_end = finished(first)
    other = submit(engine, chat(NOTES.format(topic="volcanoes")), max_tokens=12, job_id="other")
    finished(other)
    again = first_prompt + first.text + "<|im_end|>\n" + chat("And one more?")
    second = submit(engine, again, max_tokens=12, job_id="second")
    return Interrupted(
        first_end.prompt_tokens,
        finished(second),
        (first.tokens, other.tokens, second.tokens),
    )


def test_a_restored_conversation_reuses_its_prefix_and_answers_as_without_a_cache(
    uncached: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = StateCalls()
    calls.watch(monkeypatch)
    cached, slot_only = one_slot(), one_slot(prompt_cache_ram=0)
    try:
        with_cache = interrupted_conversation(cached)
        usage = cached.prompt_cache_usage
        with_slot_only = interrupted_conversation(slot_only)
    finally:
        cached.close()
        slot_only.close()
    without = interrupted_conversation(uncached)
    # The default KV cache (Q8_0) gives the same greedy answers however the prefix got there.
    assert with_cache.answers == with_slot_only.answers == without.answers
    assert without.second.cached_prompt_tokens == 0
    # The slot alone keeps only what both conversations open with; the saved state gives back
    # the whole first turn (its prompt and the answer tokens that were decoded).
    assert with_slot_only.second.cached_prompt_tokens < 20
    assert with_cache.second.cached_prompt_tokens >= with_cache.first_prompt_tokens + 10
    assert with_cache.second.cached_prompt_tokens < with_cache.second.prompt_tokens
    # Saved: the first conversation when the other took its slot, then the other when the
    # first came back. Restored: the first. With a budget of 0, llama.cpp was never asked.
    assert (calls.saved, calls.restored) == (2, 1)
    assert usage.states == 2
    assert 0 < usage.size <= usage.budget


def story(number: int) -> str:
    return STORY.format(number=number)


def shared_opening(engine: Engine) -> int:
    """The tokens every story opens with."""
    first, second = (
        engine.tokenize(story(number), add_bos=True, parse_special=True) for number in (1, 2)
    )
    return common_prefix_length(first, second)


def measured_state_size() -> int:
    """The size of the state one story leaves in a slot, as an unbounded cache keeps it."""
    engine = one_slot(prompt_cache_ram=UNLIMITED_PROMPT_CACHE)
    try:
        finished(submit(engine, story(1), max_tokens=4))
        finished(submit(engine, story(2), max_tokens=4))  # saves story 1
        usage = engine.prompt_cache_usage
    finally:
        engine.close()
    assert usage.states == 1
    return usage.size


def test_the_oldest_states_are_evicted_to_stay_within_the_budget() -> None:
    size = measured_state_size()
    engine = one_slot(prompt_cache_ram=size * 3 // 2)  # room for one story, not two
    usages: list[PromptCacheUsage] = []
    cached: dict[int, int] = {}
    try:
        for number in (1, 2, 3, 1, 3):
            end = finished(submit(engine, story(number), max_tokens=4, job_id=f"{number}"))
            cached[number] = end.cached_prompt_tokens
            usages.append(engine.prompt_cache_usage)
        shared = shared_opening(engine)
    finally:
        engine.close()
    assert all(usage.size <= usage.budget for usage in usages)
    assert [usage.states for usage in usages] == [0, 1, 1, 1, 1]
    # Story 3 took the slot from story 2, whose save evicted story 1: story 1 comes back with
    # only what all stories open with. Story 3 (saved as story 1 took the slot) is restored.
    assert cached[1] == shared
    assert cached[3] == end.prompt_tokens - 1


def test_a_state_larger_than_the_budget_is_not_kept() -> None:
    size = measured_state_size()
    calls: list[PromptCacheUsage] = []
    engine = one_slot(prompt_cache_ram=size - 1)
    try:
        for number in (1, 2, 1):
            end = finished(submit(engine, story(number), max_tokens=4, job_id=f"{number}"))
            calls.append(engine.prompt_cache_usage)
        shared = shared_opening(engine)
    finally:
        engine.close()
    assert calls[-1] == PromptCacheUsage(0, 0, size - 1)
    assert end.cached_prompt_tokens == shared


def test_a_budget_of_zero_never_saves_nor_restores(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = StateCalls()
    calls.watch(monkeypatch)
    engine = one_slot(prompt_cache_ram=0)
    try:
        ends = [
            finished(submit(engine, story(number), max_tokens=4, job_id=f"{number}"))
            for number in (1, 2, 1, 1)
        ]
        usage = engine.prompt_cache_usage
        shared = shared_opening(engine)
    finally:
        engine.close()
    assert (calls.saved, calls.restored) == (0, 0)
    assert usage == PromptCacheUsage(0, 0, 0)
    # The slot's own reuse is as before: the shared opening, then the whole repeated prompt.
    cached = [end.cached_prompt_tokens for end in ends]
    assert cached == [0, shared, shared, ends[3].prompt_tokens - 1]


def short_bytes(restore: Callable[..., int]) -> Callable[..., int]:
    def cut(ctx: Any, src: Any, size: int, seq_id: int) -> int:
        return restore(ctx, src, size // 2, seq_id)

    return cut


def foreign_bytes(restore: Callable[..., int]) -> Callable[..., int]:
    def scramble(ctx: Any, src: Any, size: int, seq_id: int) -> int:
        data = bytearray(memoryview(src).cast("B"))
        data[:16] = bytes(16)
        return restore(ctx, (ctypes.c_uint8 * size).from_buffer(data), size, seq_id)

    return scramble


@pytest.mark.parametrize("corrupt", [short_bytes, foreign_bytes])
def test_a_state_llama_cpp_refuses_is_dropped_and_the_prompt_decoded(
    corrupt: Callable[[Callable[..., int]], Callable[..., int]],
    uncached: Engine,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(
        llama_cpp, "llama_state_seq_set_data", corrupt(llama_cpp.llama_state_seq_set_data)
    )
    engine = one_slot()
    try:
        with caplog.at_level(logging.WARNING):
            refused = interrupted_conversation(engine)
        usage = engine.prompt_cache_usage
        after = finished(submit(engine, chat("Hi"), max_tokens=3, job_id="after"))
    finally:
        engine.close()
    assert "could not restore" in caplog.text
    assert "decoding the prompt instead" in caplog.text
    # The second turn got only what the slot held (the other conversation's opening), and
    # answered as an uncached engine does.
    assert refused.second.cached_prompt_tokens < 20
    assert refused.answers == interrupted_conversation(uncached).answers
    # The refused state was dropped; the other conversation, saved as the first came back,
    # stays. The engine serves on.
    assert usage.states == 1
    assert after.generated_tokens == 3
    assert engine.slots_processing == 0


def test_an_embedding_batch_saves_the_slots_and_generation_restores_them() -> None:
    engine = Engine.load(
        EngineSettings(
            model_path=model_path(),
            slots=2,
            context_size=2048,
            enable_embeddings=True,
            pooling_type="Mean",
        )
    )
    try:
        prompt = chat(NOTES.format(topic="glaciers"))
        first = submit(engine, prompt, max_tokens=6)
        first_end = finished(first)
        embed(engine, [("a", "one document"), ("b", "another")]).wait()  # clears the KV cache
        again = submit(engine, prompt, max_tokens=6)
        again_end = finished(again)
    finally:
        engine.close()
    assert again_end.cached_prompt_tokens == first_end.prompt_tokens - 1
    assert again.tokens == first.tokens


def test_a_state_saved_from_one_slot_is_restored_into_another(
    uncached: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    engine = Engine.load(EngineSettings(model_path=model_path(), slots=2, context_size=2048))
    first_prompt = chat(NOTES.format(topic="lighthouses"))
    try:
        with caplog.at_level(logging.DEBUG, "paddler_tui.server.agent.engine.scheduler"):
            first = submit(engine, first_prompt, max_tokens=12, job_id="first")  # slot 0
            first_end = finished(first)
            for topic in ("volcanoes", "honeybees"):  # slot 1, then slot 0: the first is saved
                finished(submit(engine, chat(NOTES.format(topic=topic)), max_tokens=12))
            again = first_prompt + first.text + "<|im_end|>\n" + chat("And one more?")
            second = submit(engine, again, max_tokens=12, job_id="second")
            second_end = finished(second)
    finally:
        engine.close()
    assert "saved slot 0" in caplog.text
    assert "into slot 1" in caplog.text  # the least recently used free slot
    assert second_end.cached_prompt_tokens >= first_end.prompt_tokens + 10
    assert second.tokens == submit_and_wait(uncached, again)


def submit_and_wait(engine: Engine, prompt: str) -> list[int]:
    collector = submit(engine, prompt, max_tokens=12)
    finished(collector)
    return collector.tokens
