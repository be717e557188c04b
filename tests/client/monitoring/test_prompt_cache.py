from __future__ import annotations

from paddler_tui.client.monitoring.history import MonitorHistory
from paddler_tui.client.monitoring.prompt_cache import (
    PromptTokenCounter,
    PromptTokens,
    cluster_prompt_tokens,
    routed_total,
    share_label,
)
from paddler_tui.protocol.monitor import MonitorAgent, RoutingCounts
from tests.support.monitor_script import T0, monitor_agent, update


def agent(agent_id: str, prompt: int, cached: int) -> MonitorAgent:
    return monitor_agent(agent_id, agent_id, prompt_tokens=prompt, cached_prompt_tokens=cached)


def test_share_and_its_label() -> None:
    assert PromptTokens(200, 150).share == 0.75
    assert share_label(PromptTokens(200, 150)) == "75%"
    assert PromptTokens().share is None
    assert share_label(PromptTokens()) == "—"
    assert PromptTokens(10, 1) + PromptTokens(5, 4) == PromptTokens(15, 5)


def test_cluster_totals_and_routing_count() -> None:
    current = update(0, agents=[agent("a", 100, 40), agent("b", 300, 260)])
    assert cluster_prompt_tokens(current) == PromptTokens(400, 300)
    assert routed_total(RoutingCounts(prefix_hit=3, fallback=2, least_busy=1)) == 6


def test_counter_takes_each_agents_growth_and_skips_history() -> None:
    counter = PromptTokenCounter()
    # The totals of the first update happened before we watched.
    assert counter.observe(update(0, agents=[agent("a", 500, 300)])) == PromptTokens()
    assert counter.observe(update(1, agents=[agent("a", 700, 450)])) == PromptTokens(200, 150)
    # b joined since: all of its totals are new; a's did not move.
    assert counter.observe(
        update(2, agents=[agent("a", 700, 450), agent("b", 80, 0)])
    ) == PromptTokens(80, 0)
    # a left, taking its totals: nothing finished, though the cluster's sum fell.
    assert counter.observe(update(3, agents=[agent("b", 80, 0)])) == PromptTokens()
    # A total that shrank for the same id counts nothing.
    assert counter.observe(update(4, agents=[agent("b", 10, 0)])) == PromptTokens()


def test_history_cache_share_per_second_carries_over_quiet_seconds() -> None:
    history = MonitorHistory(seconds=6)
    assert history.latest_prompt_tokens() == PromptTokens()
    history.observe(update(0, agents=[agent("a", 100, 0)]))
    history.observe(update(1, agents=[agent("a", 300, 100)]))
    # Two updates in one second add up.
    history.observe(
        update(2, agents=[agent("a", 400, 150)]).model_copy(update={"server_time": T0 + 2000})
    )
    history.observe(
        update(2, agents=[agent("a", 500, 250)]).model_copy(update={"server_time": T0 + 2500})
    )
    history.observe(update(4, agents=[agent("a", 500, 250)]))  # second 3 is a gap
    assert history.cache_hit_percent == [0.0, 0.0, 50.0, 75.0, 75.0, 75.0]
    assert history.latest_prompt_tokens() == PromptTokens(200, 150)
