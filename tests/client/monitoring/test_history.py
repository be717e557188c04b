from __future__ import annotations

from paddler_tui.client.monitoring.history import MonitorHistory, TokenCounter
from paddler_tui.client.monitoring.sse_fallback import FallbackMonitor
from paddler_tui.protocol.agent_status import AgentControllerPoolSnapshot
from paddler_tui.protocol.monitor import MonitorAgent, MonitorRequest
from paddler_tui.protocol.usage import TokenUsage
from tests.support.fake_balancer import agent_snapshot
from tests.support.monitor_script import T0, event, monitor_agent, request, update


def test_history_keeps_each_seconds_peak_and_fills_gaps() -> None:
    history = MonitorHistory(seconds=5)

    def agents(busy: int) -> list[MonitorAgent]:
        return [monitor_agent("a", "a", slots_busy=busy, slots_total=4)]

    history.observe(update(0, agents=agents(1), buffered=2))
    history.observe(
        update(0, agents=agents(3), buffered=0).model_copy(update={"server_time": T0 + 500})
    )
    history.observe(update(3, agents=agents(0)))
    assert history.busy == [0.0, 3.0, 3.0, 3.0, 0.0]  # padded to the window, gaps repeat the last
    assert history.buffered == [0.0, 2.0, 2.0, 2.0, 0.0]
    assert history.latest() == (0, 0)
    for second in range(4, 12):
        history.observe(update(second, agents=agents(second % 2)))
    assert history.busy == [1.0, 0.0, 1.0, 0.0, 1.0]


def test_history_restarts_when_the_balancer_clock_goes_back() -> None:
    history = MonitorHistory(seconds=3)
    history.observe(update(10, agents=[monitor_agent("a", "a", slots_busy=2)]))
    history.observe(update(1, agents=[monitor_agent("a", "a", slots_busy=1)]))
    assert history.busy == [0.0, 0.0, 1.0]


def test_tokens_are_counted_per_second_including_finished_requests() -> None:
    history = MonitorHistory(seconds=4)
    usage = TokenUsage.zero().model_copy(update={"content_tokens": 30})

    def running(tokens: int) -> list[MonitorRequest]:
        return [request("r1", phase="running", agent="a", started=T0, last=T0, tokens=tokens)]

    history.observe(update(0, agents=[], requests=running(5)))  # before we watched: not counted
    history.observe(update(1, agents=[], requests=running(15)))
    history.observe(
        update(
            2,
            agents=[],
            events=[event(2, "request_completed", "Done", request_id="r1", usage=usage)],
        )
    )
    # A request that started and finished between two frames still counts.
    history.observe(
        update(
            3,
            agents=[],
            events=[event(3, "request_completed", "Done", request_id="r2", usage=usage)],
        )
    )
    assert history.tokens_per_second == [0.0, 10.0, 15.0, 30.0]
    assert history.latest_tokens_per_second() == 15.0


def test_token_counter_ignores_embeddings_and_history() -> None:
    counter = TokenCounter()
    usage = TokenUsage.zero().model_copy(update={"content_tokens": 99})
    old = update(
        5, agents=[], events=[event(1, "request_completed", "Done", request_id="x", usage=usage)]
    )
    assert counter.observe(old) == 0
    embedding = request(
        "e1", phase="running", agent="a", started=T0, last=T0, tokens=50
    ).model_copy(update={"kind": "embedding"})
    assert counter.observe(update(6, agents=[], requests=[embedding])) == 0


def test_fallback_builds_updates_with_joins_and_leaves() -> None:
    fallback = FallbackMonitor()
    first = fallback.agents(
        AgentControllerPoolSnapshot(agents=[agent_snapshot("a1", "alpha", slots_processing=1)]),
        1000,
    )
    assert first.events == []
    assert [(a.name, a.slots_busy, a.slots_total) for a in first.agents] == [("alpha", 1, 2)]
    assert (first.buffer.max_buffered, first.timeouts.inference_item_timeout_ms) == (0, 0)
    second = fallback.agents(
        AgentControllerPoolSnapshot(agents=[agent_snapshot("a2", "beta")]), 2000
    )
    assert [(e.kind, e.message, e.at) for e in second.events] == [
        ("agent_joined", "beta joined", 2000),
        ("agent_left", "alpha left", 2000),
    ]
    buffered = fallback.buffered(4, 3000)
    assert (buffered.buffer.buffered, buffered.server_time, len(buffered.agents)) == (4, 3000, 1)
