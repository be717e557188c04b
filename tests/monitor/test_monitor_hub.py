"""The monitor's bookkeeping and frames, without sockets."""

from __future__ import annotations

from paddler_tui.net_address import HostPort
from paddler_tui.protocol.agent_status import SlotAggregatedStatusSnapshot
from paddler_tui.protocol.monitor import decode_monitor_update, encode_monitor_update
from paddler_tui.protocol.usage import TokenUsage
from paddler_tui.server.balancer.agent_controller import AgentController
from paddler_tui.server.balancer.balancer import Balancer, BalancerSettings
from paddler_tui.server.balancer.monitor_hub import EVENT_HISTORY, MonitorHub
from paddler_tui.server.balancer.state_database import MemoryStateDatabase
from paddler_tui.server.balancer.web.monitor_socket import build_update


def agent(name: str = "agent-1", slots: int = 2) -> AgentController:
    def send(_: object) -> None:
        return None

    return AgentController(
        agent_id=f"id-{name}",
        name=name,
        snapshot=SlotAggregatedStatusSnapshot(
            desired_slots_total=slots,
            download_current=0,
            download_filename=None,
            download_indeterminate=True,
            download_total=0,
            issues=[],
            model_path="/m.gguf",
            slots_processing=0,
            slots_total=slots,
            state_application_status="Applied",
            uses_chat_template_override=False,
            version=1,
        ),
        send=send,
    )


def balancer() -> Balancer:
    settings = BalancerSettings(
        inference_addr=HostPort("127.0.0.1", 1),
        management_addr=HostPort("127.0.0.1", 2),
        max_buffered_requests=7,
        buffered_request_timeout_ms=1234,
        inference_item_timeout_ms=5678,
    )
    return Balancer(settings, MemoryStateDatabase())


def usage(content: int) -> TokenUsage:
    return TokenUsage.zero().model_copy(update={"prompt_tokens": 3, "content_tokens": content})


def test_a_request_goes_from_buffered_to_running_to_a_completion_event() -> None:
    hub = MonitorHub()
    worker = agent()
    hub.buffered("r1", "conversation")
    assert [(r.id, r.phase, r.agent_id) for r in hub.requests()] == [("r1", "buffered", None)]
    hub.running("r1", worker)
    hub.item("r1", token=True)
    hub.item("r1", token=True)
    [request] = hub.requests()
    assert (request.phase, request.agent_name, request.tokens) == ("running", "agent-1", 2)
    assert request.last_item_at >= request.started_at
    hub.finished("r1", "request_completed", "Done", usage(2))
    assert hub.requests() == []
    [(number, event)] = list(hub.events)
    assert number == 1
    assert (event.kind, event.request_id, event.agent_name) == (
        "request_completed",
        "r1",
        "agent-1",
    )
    assert event.usage == usage(2)
    assert event.tokens_per_second is not None and event.tokens_per_second > 0


def test_draining_and_silent_finish() -> None:
    hub = MonitorHub()
    hub.buffered("r1", "raw_prompt")
    hub.running("r1", agent())
    hub.draining("r1")
    assert hub.requests()[0].phase == "draining"
    hub.finished("r1")
    assert hub.requests() == []
    assert not hub.events


def test_updates_for_unknown_requests_are_ignored() -> None:
    hub = MonitorHub()
    hub.running("nope", agent())
    hub.item("nope", token=True)
    hub.draining("nope")
    assert hub.requests() == []


def test_every_change_moves_the_signal() -> None:
    hub = MonitorHub()
    before = hub.changed.generation
    hub.buffered("r1", "embedding")
    hub.item("r1", token=True)
    hub.event("agent_joined", "joined")
    assert hub.changed.generation == before + 3


def test_the_first_frame_has_the_kept_history_then_only_new_events() -> None:
    cluster = balancer()
    worker = agent()
    cluster.pool.register(worker)
    cluster.monitor.event("agent_joined", "agent-1 joined", agent=worker)
    cluster.monitor.buffered("r1", "conversation")
    first, seen = build_update(cluster, -1)
    assert [e.kind for e in first.events] == ["agent_joined"]
    assert first.buffer.max_buffered == 7 and first.buffer.timeout_ms == 1234
    assert first.timeouts.inference_item_timeout_ms == 5678
    assert [(a.name, a.slots_total, a.slots_busy) for a in first.agents] == [("agent-1", 2, 0)]
    assert [r.id for r in first.requests] == ["r1"]
    second, seen = build_update(cluster, seen)
    assert second.events == [] and second.events_dropped == 0
    cluster.monitor.finished("r1", "buffer_timeout", "Waiting for available slot timed out")
    third, _ = build_update(cluster, seen)
    assert [e.kind for e in third.events] == ["buffer_timeout"]
    assert third.requests == []
    assert decode_monitor_update(encode_monitor_update(third)) == third


def test_a_subscriber_that_fell_behind_is_told_how_many_events_it_missed() -> None:
    cluster = balancer()
    _, seen = build_update(cluster, -1)
    for number in range(EVENT_HISTORY + 50):
        cluster.monitor.event("client_cancelled", f"cancel {number}")
    update, _ = build_update(cluster, seen)
    assert len(update.events) == EVENT_HISTORY
    assert update.events_dropped == 50
    assert update.events[-1].message == f"cancel {EVENT_HISTORY + 49}"
    # Memory stays bounded however many events happen.
    assert len(cluster.monitor.events) == EVENT_HISTORY
