from __future__ import annotations

from paddler_tui.client.apply_tracker import SETTLE_S, ApplyTracker
from paddler_tui.protocol.agent_status import AgentControllerPoolSnapshot, AgentControllerSnapshot
from tests.support.fake_balancer import agent_snapshot


def pool(*agents: AgentControllerSnapshot) -> AgentControllerPoolSnapshot:
    return AgentControllerPoolSnapshot(agents=list(agents))


def test_a_reload_is_followed_until_applied() -> None:
    tracker = ApplyTracker(started_at=0.0)
    before = pool(agent_snapshot("a1", "alpha"))
    tracker.observe(before)  # still the old state: Applied, but not yet moved
    assert tracker.agent_state(before.agents[0], 0.1) == "applying"
    loading = pool(agent_snapshot("a1", "alpha", state_application_status="Fresh", slots_total=0))
    tracker.observe(loading)
    assert tracker.agent_state(loading.agents[0], 0.2) == "applying"
    assert tracker.summary(loading, 0.2) == "applying… 0/1 agents done"
    tracker.observe(before)
    assert tracker.agent_state(before.agents[0], 0.3) == "applied"
    assert tracker.finished(before, 0.3)
    assert tracker.summary(before, 0.3) == "applied by all 1 agents"


def test_an_in_place_change_counts_once_settled() -> None:
    tracker = ApplyTracker(started_at=10.0)
    snapshot = pool(agent_snapshot("a1", "alpha"), agent_snapshot("a2", "beta"))
    tracker.observe(snapshot)
    assert not tracker.finished(snapshot, 10.0 + SETTLE_S - 0.1)
    assert tracker.finished(snapshot, 10.0 + SETTLE_S)


def test_failures_and_late_joiners() -> None:
    tracker = ApplyTracker(started_at=0.0)
    tracker.observe(pool(agent_snapshot("a1", "alpha")))
    stuck = agent_snapshot("a1", "alpha", state_application_status="Stuck")
    joined = agent_snapshot("a2", "beta")
    now = pool(stuck, joined)
    tracker.observe(now)
    assert tracker.agent_state(stuck, 0.5) == "failed"
    assert tracker.agent_state(joined, 0.5) == "applied"
    assert tracker.finished(now, 0.5)
    assert tracker.summary(now, 0.5) == "1 of 2 agents could not apply it (see issues)"


def test_no_agents() -> None:
    tracker = ApplyTracker(started_at=0.0)
    empty = pool()
    tracker.observe(empty)
    assert tracker.finished(empty, 0.0)
    assert tracker.summary(empty, 0.0).startswith("saved; no agent is connected")
