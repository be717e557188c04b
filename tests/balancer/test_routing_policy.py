"""The routing policy on plain numbers: prefix hits, the imbalance bound, least-busy fallback."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from paddler_tui.server.balancer.routing.policy import Candidate, choose, pin

IMBALANCE = 2

candidates = st.lists(
    st.builds(
        Candidate,
        free=st.booleans(),
        load=st.integers(min_value=0, max_value=6),
        depth=st.integers(min_value=0, max_value=4),
    ),
    max_size=5,
)


def agent(load: int, depth: int = 0, *, free: bool = True) -> Candidate:
    return Candidate(free=free, load=load, depth=depth)


def test_without_prefixes_the_first_least_busy_free_agent_wins() -> None:
    assert choose([agent(2), agent(1), agent(1), agent(0, free=False)], IMBALANCE) == (
        1,
        "least_busy",
    )


def test_the_deepest_holder_with_a_free_slot_wins() -> None:
    assert choose([agent(0), agent(1, depth=1), agent(2, depth=3)], IMBALANCE) == (2, "prefix_hit")


def test_among_equal_holders_the_least_loaded_wins() -> None:
    assert choose([agent(2, depth=2), agent(1, depth=2), agent(0)], IMBALANCE) == (1, "prefix_hit")


def test_a_holder_loaded_beyond_the_imbalance_falls_back_to_the_least_busy() -> None:
    assert choose([agent(3, depth=2), agent(0)], IMBALANCE) == (1, "fallback")
    assert choose([agent(2, depth=2), agent(0)], IMBALANCE) == (0, "prefix_hit")
    assert choose([agent(1, depth=2), agent(0)], 0) == (1, "fallback")


def test_a_holder_without_a_free_slot_falls_back_preferring_a_shorter_prefix() -> None:
    picked = choose([agent(1, depth=3, free=False), agent(1), agent(1, depth=1)], IMBALANCE)

    assert picked == (2, "fallback")


def test_no_free_slot_means_no_choice() -> None:
    assert choose([agent(1, depth=1, free=False), agent(2, free=False)], IMBALANCE) is None
    assert choose([], IMBALANCE) is None


def test_a_waiter_is_pinned_to_the_holder_within_the_imbalance() -> None:
    assert pin([agent(2, free=False), agent(3, depth=1, free=False)], IMBALANCE) == 1
    assert pin([agent(2, free=False), agent(5, depth=1, free=False)], IMBALANCE) is None
    assert pin([agent(2, free=False), agent(2, free=False)], IMBALANCE) is None


@given(candidates, st.integers(min_value=0, max_value=3))
def test_choices_follow_the_rules(agents: list[Candidate], imbalance: int) -> None:
    picked = choose(agents, imbalance)
    free = [a for a in agents if a.free]
    if not free:
        assert picked is None
        return
    assert picked is not None
    index, decision = picked
    chosen = agents[index]
    assert chosen.free
    deepest = max(a.depth for a in agents)
    least = min(a.load for a in agents)
    if decision == "prefix_hit":
        assert chosen.depth == deepest > 0
        assert chosen.load <= least + imbalance
    else:
        # Least busy among the free agents, and no eligible holder was passed over.
        assert chosen.load == min(a.load for a in free)
        assert (decision == "least_busy") == (deepest == 0)
        assert not [a for a in free if a.depth == deepest > 0 and a.load <= least + imbalance]


@given(candidates, st.integers(min_value=0, max_value=3))
def test_a_pin_goes_to_a_deepest_holder_within_the_imbalance(
    agents: list[Candidate], imbalance: int
) -> None:
    pinned = pin(agents, imbalance)
    if pinned is None:
        return
    deepest = max(a.depth for a in agents)
    assert agents[pinned].depth == deepest > 0
    assert agents[pinned].load <= min(a.load for a in agents) + imbalance
