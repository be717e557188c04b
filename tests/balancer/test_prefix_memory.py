"""An agent's prefix memory: the longest recorded prefix, within a bounded LRU."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from paddler_tui.server.balancer.routing.prefix_memory import PrefixMemory

chains = st.lists(st.integers(), max_size=8, unique=True).map(tuple)


def test_the_longest_recorded_prefix_is_matched() -> None:
    memory = PrefixMemory()
    memory.record((1, 2, 3))

    assert memory.match_depth((1, 2, 3, 4, 5)) == 3
    assert memory.match_depth((1, 2)) == 2
    assert memory.match_depth((9, 8)) == 0
    assert memory.match_depth(()) == 0


def test_a_hit_deep_in_the_chain_vouches_for_its_evicted_prefix() -> None:
    memory = PrefixMemory(capacity=2)
    memory.record((1, 2, 3))  # 1 is evicted: it is the oldest

    assert len(memory) == 2
    assert memory.match_depth((1, 2, 3, 4)) == 3


def test_the_least_recently_recorded_hashes_go_first() -> None:
    memory = PrefixMemory(capacity=3)
    memory.record((1, 2))
    memory.record((3,))
    memory.record((1,))  # 1 is fresh again; 2 is now the oldest

    memory.record((4,))

    assert memory.match_depth((1,)) == 1
    assert memory.match_depth((2,)) == 0
    assert memory.match_depth((3,)) == 1


@given(st.lists(chains, max_size=30), st.integers(min_value=1, max_value=16))
def test_the_bound_holds_and_the_last_chain_is_fully_matched(
    recorded: list[tuple[int, ...]], capacity: int
) -> None:
    memory = PrefixMemory(capacity=capacity)
    for chain in recorded:
        memory.record(chain)

    assert len(memory) <= capacity
    if recorded and recorded[-1]:
        assert memory.match_depth(recorded[-1]) == len(recorded[-1])


def test_clear_forgets_everything() -> None:
    memory = PrefixMemory()
    memory.record((1, 2))

    memory.clear()

    assert memory.match_depth((1, 2)) == 0
    assert len(memory) == 0
