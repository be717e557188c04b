"""The prompt cache's bookkeeping of saved states, without llama.cpp (the bytes are stand-ins)."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paddler_tui.server.agent.engine.prompt_cache import Match, PromptCache
from paddler_tui.server.agent.engine.types import UNLIMITED_PROMPT_CACHE


def state(size: int) -> bytearray:
    return bytearray(size)


def kept(cache: PromptCache) -> list[tuple[int, ...]]:
    return [saved.tokens for saved in cache.states()]


def test_the_longest_shared_prefix_wins() -> None:
    cache = PromptCache(UNLIMITED_PROMPT_CACHE)
    cache.add([1, 2, 3, 4], state(10))
    cache.add([1, 2, 9], state(10))
    cache.add([5, 6], state(10))
    match = cache.longest_prefix([1, 2, 3, 7, 8])
    assert match is not None
    assert (match.state.tokens, match.shared) == ((1, 2, 3, 4), 3)
    assert cache.longest_prefix([7, 7]) is None
    assert PromptCache(UNLIMITED_PROMPT_CACHE).longest_prefix([1]) is None


def test_a_tie_goes_to_the_most_recently_used_state() -> None:
    cache = PromptCache(UNLIMITED_PROMPT_CACHE)
    cache.add([1, 2, 3], state(10))
    cache.add([1, 2, 4], state(10))
    first = cache.states()[0]
    match = cache.longest_prefix([1, 2, 5])
    assert match is not None and match.state.tokens == (1, 2, 4)
    cache.touch(first)
    assert cache.longest_prefix([1, 2, 5]) == Match(first, 2)


def test_the_least_recently_used_states_are_evicted_to_stay_within_the_budget() -> None:
    cache = PromptCache(25)
    assert cache.add([1], state(10))
    assert cache.add([2], state(10))
    cache.touch(cache.states()[0])  # [1] is now the most recently used
    assert cache.add([3], state(10))
    assert kept(cache) == [(1,), (3,)]
    assert cache.size == 20
    assert cache.add([4], state(15))  # the oldest goes, and that is enough
    assert kept(cache) == [(3,), (4,)]
    assert cache.size == 25
    assert cache.add([5], state(25))
    assert kept(cache) == [(5,)]


def test_a_state_larger_than_the_budget_is_not_kept(caplog: pytest.LogCaptureFixture) -> None:
    cache = PromptCache(25)
    cache.add([1], state(10))
    with caplog.at_level(logging.DEBUG, "paddler_tui.server.agent.engine.prompt_cache"):
        assert not cache.add([2], state(26))
    assert kept(cache) == [(1,)]  # nothing was evicted for it
    assert "exceed the whole budget" in caplog.text


def test_a_longer_run_of_a_sequence_supersedes_its_prefix() -> None:
    cache = PromptCache(UNLIMITED_PROMPT_CACHE)
    cache.add([1, 2], state(10))
    cache.add([1, 3], state(10))
    assert cache.add([1, 2, 3], state(15))
    assert kept(cache) == [(1, 3), (1, 2, 3)]
    assert cache.size == 25
    # A prefix of a state kept adds nothing: restoring that state and truncating gives it.
    assert not cache.wants([1, 2])
    assert not cache.add([1, 2], state(10))
    assert cache.wants([1, 2, 4])
    assert kept(cache) == [(1, 3), (1, 2, 3)]


def test_a_budget_of_zero_keeps_nothing() -> None:
    cache = PromptCache(0)
    assert not cache.enabled
    assert not cache.wants([1, 2])
    assert not cache.add([1, 2], state(1))
    assert (len(cache), cache.size, cache.longest_prefix([1, 2])) == (0, 0, None)


def test_no_limit_keeps_everything() -> None:
    cache = PromptCache(UNLIMITED_PROMPT_CACHE)
    for token in range(100):
        cache.add([token], state(1 << 20))
    assert (len(cache), cache.size) == (100, 100 << 20)


def test_a_discarded_or_cleared_state_is_gone() -> None:
    cache = PromptCache(UNLIMITED_PROMPT_CACHE)
    cache.add([1, 2], state(10))
    cache.add([3, 4], state(10))
    cache.discard(cache.states()[0], "broken")
    assert (kept(cache), cache.size) == ([(3, 4)], 10)
    cache.clear()
    assert (len(cache), cache.size) == (0, 0)


def test_a_budget_below_minus_one_is_refused() -> None:
    with pytest.raises(ValueError, match="unlimited"):
        PromptCache(-2)


@given(
    st.integers(0, 60),
    st.lists(
        st.tuples(st.lists(st.integers(0, 2), min_size=1, max_size=5), st.integers(1, 30)),
        max_size=30,
    ),
)
def test_the_budget_holds_and_no_state_is_a_prefix_of_another(
    budget: int, saves: list[tuple[list[int], int]]
) -> None:
    cache = PromptCache(budget)
    for tokens, size in saves:
        cache.add(tokens, state(size))
        assert cache.size == sum(saved.size for saved in cache.states()) <= budget
        held = kept(cache)
        assert not any(a != b and b[: len(a)] == a for a in held for b in held)
        if size <= budget:  # a state that fits is kept, or a longer run of it is
            assert not cache.wants(tokens)
