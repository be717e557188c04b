"""The request relay's state machine, without sockets or an event loop.

Every state meets every event (a table of the next state and the actions), the endings are
checked field by field, and random event orders keep the invariants: a held slot is released
exactly once, the client gets exactly one last message (none if it left), the agent is told to
stop at most once and only after dispatch, nothing is delivered after the end, and the monitor
records exactly one finish.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import get_args

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paddler_tui.protocol.agent_socket import ChatTemplateOverride
from paddler_tui.protocol.embedding import EmbeddingDone
from paddler_tui.protocol.envelope import EmbeddingResponse
from paddler_tui.protocol.inference_socket import RelayedResponse, ResponseEnvelope
from paddler_tui.protocol.monitor import MonitorEventKind
from paddler_tui.protocol.usage import TokenUsage
from paddler_tui.server.balancer.relay import (
    Action,
    Deliver,
    EndStream,
    RecordEvent,
    RecordFinish,
    RecordItem,
    RecordPhase,
    RelayState,
    ReleaseSlot,
    RequestRelay,
    SendRequest,
    SendStop,
)
from paddler_tui.server.balancer.request_errors import (
    AGENT_GONE,
    BUFFER_TIMEOUT,
    OVERFLOW,
    SEND_FAILED,
    SHUTTING_DOWN,
    error_envelope,
    item_timeout_error,
)
from tests.balancer.pool_fakes import raw_prompt, relayed
from tests.support.generated_tokens import done, token

S = RelayState
TIMEOUT_MS = 1234

# What a relayed token answers, as one pseudo-action, so every event yields a tuple of actions.
TOKEN = "token"


def new_relay() -> RequestRelay:
    return RequestRelay("req-1", raw_prompt(), item_timeout_ms=TIMEOUT_MS)


EVENTS: dict[str, Callable[[RequestRelay], tuple[object, ...]]] = {
    "slot_granted": lambda r: r.slot_granted("agent-1"),
    "buffer_overflow": lambda r: r.buffer_overflow(),
    "buffer_timed_out": lambda r: r.buffer_timed_out(),
    "request_sent": lambda r: r.request_sent(),
    "send_failed": lambda r: r.send_failed(),
    "relayed_token": lambda r: () if r.relayed_token(relayed("req-1", "x")) is None else (TOKEN,),
    "token": lambda r: r.response(token("x")),
    "done": lambda r: r.response(done()),
    "other_answer": lambda r: r.response(ChatTemplateOverride(value=None)),
    "item_timed_out": lambda r: r.item_timed_out(),
    "agent_lost": lambda r: r.agent_lost(),
    "client_gone": lambda r: r.client_gone(),
    "shut_down": lambda r: r.shut_down(),
}


def relay_after(*events: str) -> RequestRelay:
    relay = new_relay()
    for event in events:
        EVENTS[event](relay)
    return relay


# Each state (the drain under both of its causes) and the events that lead there.
STATES: dict[str, tuple[str, ...]] = {
    "buffered": (),
    "dispatched": ("slot_granted",),
    "streaming": ("slot_granted", "request_sent"),
    "draining_client_gone": ("slot_granted", "request_sent", "client_gone"),
    "draining_timed_out": ("slot_granted", "request_sent", "item_timed_out"),
    "finished": ("slot_granted", "request_sent", "done"),
    "refused": ("buffer_overflow",),
    "buffer_timed_out": ("buffer_timed_out",),
    "item_timed_out": ("slot_granted", "request_sent", "item_timed_out", "item_timed_out"),
    "agent_lost": ("slot_granted", "request_sent", "agent_lost"),
    "send_failed": ("slot_granted", "send_failed"),
    "shut_down": ("shut_down",),
    "shut_down_streaming": ("slot_granted", "request_sent", "shut_down"),
    "client_gone_buffered": ("client_gone",),
    "client_gone_drained": ("slot_granted", "request_sent", "client_gone", "done"),
}


def summary(action: object) -> str:
    """An action in a few characters: its type and what tells it apart."""
    if isinstance(action, RecordPhase):
        return f"phase:{action.phase}"
    if isinstance(action, RecordEvent):
        return f"event:{action.kind}"
    if isinstance(action, RecordFinish):
        return f"finish:{action.kind or '-'}"
    if isinstance(action, EndStream):
        return f"end:{action.message.error.code}"
    names = {
        SendRequest: "send",
        SendStop: "stop",
        ReleaseSlot: "release",
        RecordItem: "item",
        Deliver: "deliver",
    }
    return TOKEN if action == TOKEN else names[type(action)]


RELAYED = {
    "relayed_token": "token",
    "token": "item deliver",
    "done": "finish:request_completed release deliver",
    "item_timed_out": "event:item_timeout phase:draining stop end:504",
    "agent_lost": "finish:agent_lost release end:502",
    "client_gone": "event:client_cancelled phase:draining stop",
    "shut_down": "finish:shutting_down release end:503",
}
DRAINED = {
    "done": "release finish:-",
    "other_answer": "release finish:-",
    "item_timed_out": "release finish:-",
    "agent_lost": "release finish:-",
    "shut_down": "release finish:-",
}
# state -> event -> actions, for every event that does anything; the others do nothing.
TABLE: dict[str, dict[str, str]] = {
    "buffered": {
        "slot_granted": "phase:running send",
        "buffer_overflow": "finish:buffer_overflow end:503",
        "buffer_timed_out": "finish:buffer_timeout end:504",
        "client_gone": "finish:client_cancelled",
        "shut_down": "finish:shutting_down end:503",
    },
    "dispatched": {"send_failed": "finish:agent_lost release end:500", **RELAYED},
    "streaming": RELAYED,
    "draining_client_gone": DRAINED,
    "draining_timed_out": DRAINED,
}
NEXT_STATE: dict[str, dict[str, RelayState]] = {
    "buffered": {
        "slot_granted": S.DISPATCHED,
        "buffer_overflow": S.REFUSED,
        "buffer_timed_out": S.TIMED_OUT,
        "client_gone": S.CLIENT_GONE,
        "shut_down": S.SHUT_DOWN,
    },
    "dispatched": {
        "request_sent": S.STREAMING,
        "send_failed": S.AGENT_LOST,
        "done": S.FINISHED,
        "item_timed_out": S.DRAINING,
        "agent_lost": S.AGENT_LOST,
        "client_gone": S.DRAINING,
        "shut_down": S.SHUT_DOWN,
    },
    "streaming": {
        "done": S.FINISHED,
        "item_timed_out": S.DRAINING,
        "agent_lost": S.AGENT_LOST,
        "client_gone": S.DRAINING,
        "shut_down": S.SHUT_DOWN,
    },
    "draining_client_gone": {event: S.CLIENT_GONE for event in DRAINED},
    "draining_timed_out": {event: S.TIMED_OUT for event in DRAINED},
}


@pytest.mark.parametrize("event", sorted(EVENTS))
@pytest.mark.parametrize("state", sorted(STATES))
def test_every_state_answers_every_event(state: str, event: str) -> None:
    relay = relay_after(*STATES[state])
    before = relay.state

    actions = EVENTS[event](relay)

    assert " ".join(summary(a) for a in actions) == TABLE.get(state, {}).get(event, "")
    assert relay.state is NEXT_STATE.get(state, {}).get(event, before)


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("buffered", S.BUFFERED),
        ("dispatched", S.DISPATCHED),
        ("streaming", S.STREAMING),
        ("draining_client_gone", S.DRAINING),
        ("finished", S.FINISHED),
        ("refused", S.REFUSED),
        ("buffer_timed_out", S.TIMED_OUT),
        ("item_timed_out", S.TIMED_OUT),
        ("agent_lost", S.AGENT_LOST),
        ("send_failed", S.AGENT_LOST),
        ("shut_down", S.SHUT_DOWN),
        ("client_gone_buffered", S.CLIENT_GONE),
        ("client_gone_drained", S.CLIENT_GONE),
    ],
)
def test_each_path_reaches_its_state(state: str, expected: RelayState) -> None:
    relay = relay_after(*STATES[state])
    assert relay.state is expected
    assert relay.relaying == (expected in (S.DISPATCHED, S.STREAMING))
    assert relay.holds_slot == (expected in (S.DISPATCHED, S.STREAMING, S.DRAINING))
    assert relay.ended == (expected not in (S.BUFFERED, S.DISPATCHED, S.STREAMING, S.DRAINING))


def test_the_slot_sends_the_request_and_names_the_agent_in_every_response() -> None:
    relay = new_relay()
    assert relay.kind == "raw_prompt"

    assert relay.slot_granted("agent-1") == (RecordPhase("running"), SendRequest(raw_prompt()))
    relay.request_sent()

    message = relay.relayed_token(relayed("req-1", "Hel"))
    assert isinstance(message, RelayedResponse)
    assert (message.head.generated_by, message.head.request_id) == ("agent-1", "req-1")
    assert message.token == relayed("req-1", "Hel")
    envelope = ResponseEnvelope(generated_by="agent-1", request_id="req-1", response=token("lo"))
    assert relay.response(token("lo")) == (RecordItem(), Deliver(envelope))


def test_a_done_records_the_completion_with_its_usage() -> None:
    relay = relay_after("slot_granted", "request_sent")
    usage = TokenUsage.zero().model_copy(update={"prompt_tokens": 3, "content_tokens": 2})
    final = done().model_copy(update={"value": done().value.model_copy(update={"usage": usage})})

    actions = relay.response(final)

    envelope = ResponseEnvelope(generated_by="agent-1", request_id="req-1", response=final)
    assert actions == (
        RecordFinish("request_completed", "Done", usage),
        ReleaseSlot(),
        Deliver(envelope),
    )


def test_an_embedding_stream_ends_at_its_done_without_usage() -> None:
    relay = relay_after("slot_granted", "request_sent")
    final = EmbeddingResponse(value=EmbeddingDone())

    actions = relay.response(final)

    assert actions[0] == RecordFinish("request_completed", "Done", None)
    assert relay.state is S.FINISHED


@pytest.mark.parametrize(
    ("events", "error", "kind"),
    [
        (("buffer_overflow",), OVERFLOW, "buffer_overflow"),
        (("buffer_timed_out",), BUFFER_TIMEOUT, "buffer_timeout"),
        (("shut_down",), SHUTTING_DOWN, "shutting_down"),
        (("slot_granted", "send_failed"), SEND_FAILED, "agent_lost"),
        (("slot_granted", "request_sent", "agent_lost"), AGENT_GONE, "agent_lost"),
        (("slot_granted", "request_sent", "shut_down"), SHUTTING_DOWN, "shutting_down"),
    ],
)
def test_errors_carry_paddlers_codes_and_texts(
    events: tuple[str, ...], error: tuple[int, str], kind: MonitorEventKind
) -> None:
    relay = relay_after(*events[:-1])

    actions = EVENTS[events[-1]](relay)

    assert actions[0] == RecordFinish(kind, error[1])
    assert actions[-1] == EndStream(error_envelope("req-1", error))


def test_an_item_timeout_tells_the_client_and_stops_the_agent() -> None:
    relay = relay_after("slot_granted", "request_sent")
    error = item_timeout_error(TIMEOUT_MS)

    assert relay.item_timed_out() == (
        RecordEvent("item_timeout", error[1]),
        RecordPhase("draining"),
        SendStop(),
        EndStream(error_envelope("req-1", error)),
    )
    # A second timeout gives up on the agent's confirmation.
    assert relay.item_timed_out() == (ReleaseSlot(), RecordFinish(None))


def test_a_client_leaving_is_recorded_with_the_phase() -> None:
    buffered = new_relay()
    assert buffered.client_gone() == (
        RecordFinish("client_cancelled", "the client left while buffered"),
    )
    streaming = relay_after("slot_granted", "request_sent")
    assert streaming.client_gone() == (
        RecordEvent("client_cancelled", "the client left; stopping the agent"),
        RecordPhase("draining"),
        SendStop(),
    )


# Random orders of events. Each trace ends with a shutdown, which ends every state.


def delivers(action: object) -> bool:
    return isinstance(action, Deliver | EndStream) or action == TOKEN


def is_last_message(action: object) -> bool:
    """An error, or the terminal response (the only one among EVENTS is the Done)."""
    return isinstance(action, EndStream) or (
        isinstance(action, Deliver) and action.message.response == done()
    )


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(sorted(EVENTS)), max_size=12))
def test_random_event_orders_keep_the_invariants(events: list[str]) -> None:
    relay = new_relay()
    flat: list[object] = []
    client_left = False
    lasts = 0
    for event in [*events, "shut_down"]:
        state = relay.state
        actions = EVENTS[event](relay)
        # Each answer delivers at most one message, and only as its last action.
        deliveries = [a for a in actions if delivers(a)]
        assert len(deliveries) <= 1
        assert not deliveries or deliveries[0] is actions[-1]
        # Nothing reaches a client that left or has had its last message.
        assert not (deliveries and (client_left or lasts))
        lasts += sum(map(is_last_message, actions))
        if event == "client_gone" and actions:
            assert state in (S.BUFFERED, S.DISPATCHED, S.STREAMING)
            client_left = True
        flat += actions

    assert relay.ended and not relay.holds_slot
    assert lasts == (0 if client_left else 1)
    sent = [i for i, a in enumerate(flat) if isinstance(a, SendRequest)]
    released = [i for i, a in enumerate(flat) if isinstance(a, ReleaseSlot)]
    stops = [i for i, a in enumerate(flat) if isinstance(a, SendStop)]
    finishes = [i for i, a in enumerate(flat) if isinstance(a, RecordFinish)]
    assert len(sent) <= 1
    assert len(released) == len(sent)
    assert all(release > sent[0] for release in released)
    assert len(stops) <= 1
    assert all(stop > sent[0] for stop in stops)
    assert len(finishes) == 1
    monitor = (RecordPhase, RecordItem, RecordEvent, RecordFinish)
    assert not [a for a in flat[finishes[0] + 1 :] if isinstance(a, monitor)]


def test_events_after_the_end_change_nothing() -> None:
    relay = relay_after("slot_granted", "request_sent", "done")
    for event in EVENTS.values():
        assert event(relay) == ()
    assert relay.state is S.FINISHED


def test_every_action_type_is_covered() -> None:
    seen = {
        type(action)
        for state in STATES.values()
        for event in EVENTS.values()
        for action in event(relay_after(*state))
        if action != TOKEN
    }
    assert seen == set(get_args(Action))
