"""Hypothesis fuzzing of PUT /api/v1/balancer_desired_state (issue 8, item 2).

A fake agent is registered instead of a real one: a valid mutated state may name any model, and
a real agent would try to load or download it. Every body is answered below 500; a refused one
leaves the stored state as it was, an accepted one is stored exactly and reaches the agent.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.sync.client import ClientConnection, connect

from paddler_tui.protocol import codec
from paddler_tui.protocol.agent_socket import (
    FromAgentNotificationEnvelope,
    RegisterAgent,
    SetState,
    ToAgentNotificationEnvelope,
    decode_balancer_to_agent_message,
    encode_agent_to_balancer_message,
)
from paddler_tui.protocol.desired_state import AgentDesiredState, BalancerDesiredState
from paddler_tui.protocol.model_source import (
    AgentDesiredModel,
    HuggingFace,
    LocalToAgent,
    NoModel,
    Url,
)
from tests.reliability.fuzz_strategies import bodies
from tests.support.agent_status import status
from tests.support.cluster import Cluster, deterministic_state, state_json
from tests.support.polling import poll_until

pytestmark = pytest.mark.slow

PATH = "/api/v1/balancer_desired_state"
SEED = json.loads(state_json(deterministic_state()))
CONTENT_TYPES = st.sampled_from(["application/json"] * 4 + ["text/plain", ""])
models = st.one_of(
    st.just(NoModel()),
    st.builds(LocalToAgent, value=st.text()),
    st.builds(Url, url=st.text()),
    st.builds(HuggingFace, filename=st.text(), repo_id=st.text(), revision=st.text()),
).map(lambda model: codec.to_jsonable(codec.adapter_for(AgentDesiredModel), model))


@st.composite
def well_formed_states(draw: st.DrawFn) -> bytes:
    """The seed with every value redrawn within its type: mostly accepted, some refused by
    the parameter checks, each one a change the agent must hear of."""
    state = copy.deepcopy(SEED)
    parameters = state["inference_parameters"]
    for key, value in parameters.items():
        if isinstance(value, bool):
            parameters[key] = draw(st.booleans())
        elif isinstance(value, int):
            parameters[key] = draw(st.integers(min_value=-1, max_value=100_000))
        elif isinstance(value, float):
            parameters[key] = draw(st.floats(min_value=-1, max_value=10, width=32))
    state["model"] = draw(models)
    state["multimodal_projection"] = draw(models)
    state["chat_template_override"] = draw(st.none() | st.builds(dict, content=st.text()))
    state["use_chat_template_override"] = draw(st.booleans())
    return json.dumps(state).encode()


@pytest.fixture(scope="module")
def cluster(make_module_cluster: Callable[[str], Cluster]) -> Cluster:
    cluster = make_module_cluster("fuzz-state")
    cluster.start_balancer()
    return cluster


@pytest.fixture(scope="module")
def agent(cluster: Cluster) -> Iterator[ClientConnection]:
    with connect(cluster.b.agent_socket_url("fuzz-agent")) as socket:
        register = RegisterAgent(name="fake", slot_aggregated_status_snapshot=status(slots_total=1))
        message = FromAgentNotificationEnvelope(value=register)
        socket.send(encode_agent_to_balancer_message(message).decode())
        next_state(socket)  # the state it joins with
        yield socket


def next_state(agent: ClientConnection) -> AgentDesiredState:
    while True:
        message = decode_balancer_to_agent_message(agent.recv(timeout=5))
        if isinstance(message, ToAgentNotificationEnvelope) and isinstance(message.value, SetState):
            return message.value.desired_state


def stored(client: httpx.Client) -> BalancerDesiredState:
    response = client.get(PATH)
    assert response.status_code == 200
    state: BalancerDesiredState = codec.decode(
        codec.adapter_for(BalancerDesiredState), response.content
    )
    return state


def test_desired_state_bodies_are_stored_exactly_or_refused(
    cluster: Cluster, agent: ClientConnection
) -> None:
    with httpx.Client(base_url=cluster.b.management_url, timeout=10) as client:
        before = stored(client)

        @settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
        @given(body=bodies(SEED) | well_formed_states(), content_type=CONTENT_TYPES)
        def fuzz(body: bytes, content_type: str) -> None:
            nonlocal before
            headers = {"content-type": content_type} if content_type else {}
            response = client.put(PATH, content=body, headers=headers)
            assert response.status_code in (204, 400, 413), (response.status_code, body)
            if response.status_code != 204:
                assert stored(client) == before
                return
            accepted = codec.decode(codec.adapter_for(BalancerDesiredState), body)
            assert stored(client) == accepted
            assert next_state(agent) == accepted.to_agent_desired_state()
            before = accepted

        fuzz()
        assert client.get("/health").text == "OK"
        poll_until(
            lambda: [a.name for a in cluster.agents_snapshot().agents] == ["fake"],
            timeout=5,
            what="the fake agent alone",
        )
    assert cluster.b.running()
    assert "Traceback" not in cluster.b.log_text()
