"""Shared-prefix layouts of token sequences, without llama.cpp."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from paddler_tui.server.agent.engine.token_prefixes import (
    SharedToken,
    common_prefix_length,
    longest_shared_prefix,
    shared_tokens,
)

sequences = st.lists(st.lists(st.integers(0, 3), min_size=1, max_size=8), max_size=5)


def test_common_prefixes() -> None:
    assert common_prefix_length([1, 2, 3], [1, 2, 4]) == 2
    assert common_prefix_length([1, 2], [1, 2, 3]) == 2
    assert common_prefix_length([], [1]) == 0
    assert longest_shared_prefix([1, 2, 3], [[1, 9], [1, 2, 7], [2]]) == 2
    assert longest_shared_prefix([1], []) == 0


def test_a_common_prefix_is_one_token_per_position_for_every_sharer() -> None:
    assert list(shared_tokens([[5, 6, 7], [5, 6, 8], [5, 9]])) == [
        SharedToken(5, 0, (0, 1, 2)),
        SharedToken(6, 1, (0, 1)),
        SharedToken(7, 2, (0,)),
        SharedToken(8, 2, (1,)),
        SharedToken(9, 1, (2,)),
    ]


def test_a_sequence_inside_another_adds_nothing_of_its_own() -> None:
    assert list(shared_tokens([[1, 2, 3], [1, 2]])) == [
        SharedToken(1, 0, (0, 1)),
        SharedToken(2, 1, (0, 1)),
        SharedToken(3, 2, (0,)),
    ]


@given(sequences)
def test_every_sequence_gets_each_of_its_positions_exactly_once(seqs: list[list[int]]) -> None:
    layout = list(shared_tokens(seqs))
    for index, tokens in enumerate(seqs):
        mine = sorted((item.pos, item.token) for item in layout if index in item.sequences)
        assert mine == list(enumerate(tokens))


@given(sequences)
def test_the_layout_pays_only_for_what_no_earlier_sequence_holds(seqs: list[list[int]]) -> None:
    held = sum(longest_shared_prefix(tokens, seqs[:index]) for index, tokens in enumerate(seqs))
    assert len(list(shared_tokens(seqs))) == sum(map(len, seqs)) - held
