"""Hypothesis fuzzing of every REST route and every socket message type (issue 8, item 2).

One real balancer with a real agent (2 slots, a small context so any runaway generation ends in
seconds) and the OpenAI service. Bodies and frames are random JSON, non-JSON, or valid messages
mutated a little. After each test: the balancer and the agent still run, every service answers
/health, no slot and no buffer place is left taken, a request still completes, and the
balancer logged no traceback. The desired state is fuzzed against a fake agent in
test_fuzz_desired_state.py, since a valid mutated state would make a real agent load models.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from paddler_tui.protocol import codec
from paddler_tui.protocol.agent_socket import decode_agent_to_balancer_message
from paddler_tui.protocol.inference_socket import decode_inference_client_message
from paddler_tui.protocol.requests import (
    ContinueFromConversationHistoryParams,
    ContinueFromRawPromptParams,
    GenerateEmbeddingBatchParams,
)
from paddler_tui.protocol.usage import TokenUsage
from paddler_tui.server.balancer.openai.models import (
    ChatCompletionRequest,
    EmbeddingsRequest,
    ResponsesRequest,
)
from tests.reliability.fuzz_strategies import bodies, json_values, mutated
from tests.support.cluster import Cluster, busy, deterministic_state, raw_prompt_body
from tests.support.polling import poll_until

pytestmark = pytest.mark.slow

# How long one example may take its response before the client leaves (the balancer then stops
# the agent): long enough to see a stream start, short enough for hundreds of examples.
LOOK_S = 0.3
SETTLE_S = 30.0
FUZZ = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))

RAW_PROMPT = {"raw_prompt": "Hi", "max_tokens": 2}
CONVERSATION = {
    "add_generation_prompt": True,
    "conversation_history": [{"role": "user", "content": "Hi"}],
    "enable_thinking": False,
    "max_tokens": 2,
}
EMBEDDINGS = {"input_batch": [{"content": "Hi", "id": "d1"}], "normalization_method": "L2"}
CHAT = {"model": "m", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}
RESPONSES = {"model": "m", "input": "Hi", "max_output_tokens": 2}
OPENAI_EMBEDDINGS = {"model": "m", "input": "Hi"}
STATUS: dict[str, object] = {
    "desired_slots_total": 1,
    "download_current": 0,
    "download_filename": None,
    "download_indeterminate": False,
    "download_total": 0,
    "issues": [],
    "model_path": "/m.gguf",
    "slots_processing": 0,
    "slots_total": 1,
    "state_application_status": "Applied",
    "uses_chat_template_override": False,
    "version": 1,
}


NOTHING: st.SearchStrategy[Any] = st.nothing()


@dataclass(frozen=True)
class Route:
    service: str
    method: str
    path: str
    seed: object = None
    # Bodies of the right shape with random values, which reach the agent.
    well_formed: st.SearchStrategy[Any] = NOTHING
    # Statuses above 499 that are answers, not failures: a token-mode cluster refuses
    # embedding routes with 501, as Paddler does.
    refusals: frozenset[int] = frozenset()


TOKEN_MODE_REFUSAL = frozenset({501})
few_tokens = st.integers(min_value=-2, max_value=12)
messages = st.lists(
    st.fixed_dictionaries(
        {
            "role": st.sampled_from(["user", "assistant", "system"]) | st.text(max_size=8),
            "content": st.text(max_size=80),
        }
    ),
    max_size=4,
)
BODY_ROUTES = [
    Route(
        "inference",
        "POST",
        "/api/v1/continue_from_raw_prompt",
        RAW_PROMPT,
        st.fixed_dictionaries({"raw_prompt": st.text(max_size=200), "max_tokens": few_tokens}),
    ),
    Route(
        "inference",
        "POST",
        "/api/v1/continue_from_conversation_history",
        CONVERSATION,
        st.fixed_dictionaries(
            {
                "add_generation_prompt": st.booleans(),
                "conversation_history": messages,
                "enable_thinking": st.booleans(),
                "max_tokens": few_tokens,
            }
        ),
    ),
    Route(
        "inference",
        "POST",
        "/api/v1/generate_embedding_batch",
        EMBEDDINGS,
        refusals=TOKEN_MODE_REFUSAL,
    ),
    Route(
        "openai",
        "POST",
        "/v1/chat/completions",
        CHAT,
        st.fixed_dictionaries(
            {"model": st.text(max_size=8), "messages": messages, "max_tokens": few_tokens},
            optional={"stream": st.booleans(), "temperature": st.floats(0, 2)},
        ),
    ),
    Route("openai", "POST", "/v1/responses", RESPONSES),
    Route("openai", "POST", "/v1/embeddings", OPENAI_EMBEDDINGS, refusals=TOKEN_MODE_REFUSAL),
]
SEED_MODELS: list[type[BaseModel]] = [
    ContinueFromRawPromptParams,
    ContinueFromConversationHistoryParams,
    GenerateEmbeddingBatchParams,
    ChatCompletionRequest,
    ResponsesRequest,
    EmbeddingsRequest,
]
# Routes without a body get one anyway, and every method; `{id}` is fuzzed.
OTHER_ROUTES = [
    *(Route("inference", "GET", "/health"), Route("openai", "GET", "/health")),
    *(Route("management", "GET", path) for path in ("/health", "/metrics")),
    *(
        Route("management", "GET", f"/api/v1/{path}")
        for path in (
            "agents",
            "agents/stream",
            "buffered_requests",
            "buffered_requests/stream",
            "balancer_desired_state",
            "balancer_applicable_state",
            "agent/{id}/chat_template_override",
            "agent/{id}/model_metadata",
        )
    ),
    Route("openai", "GET", "/v1/models"),
    Route("openai", "GET", "/v1/models/{id}"),
]
METHODS = st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"])
CONTENT_TYPES = st.sampled_from(["application/json"] * 4 + ["text/plain", "", "application/x"])


@dataclass(frozen=True)
class Target:
    cluster: Cluster
    urls: dict[str, str]


@pytest.fixture(scope="module")
def target(make_module_cluster: Callable[[str], Cluster]) -> Target:
    cluster = make_module_cluster("fuzz").start(
        "--inference-item-timeout",
        "5000",
        agents=1,
        slots=2,
        state=deterministic_state(context_size=256),
        openai=True,
    )
    urls = {
        "inference": cluster.b.inference_url,
        "management": cluster.b.management_url,
        "openai": cluster.b.openai_url,
    }
    return Target(cluster, urls)


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=httpx.Timeout(5.0, read=LOOK_S)) as client:
        yield client


def look(client: httpx.Client, method: str, url: str, body: bytes, content_type: str) -> int | None:
    """The status, after reading for at most LOOK_S; None if no status came in that time."""
    headers = {"content-type": content_type} if content_type else {}
    try:
        with client.stream(method, url, content=body, headers=headers) as response:
            deadline = time.monotonic() + LOOK_S
            with contextlib.suppress(httpx.ReadTimeout):
                for _ in response.iter_raw():
                    if time.monotonic() > deadline:
                        break
            return response.status_code
    except httpx.ReadTimeout:
        return None  # still working (a long non-streaming answer); leaving stops it


def assert_cluster_serves(target: Target) -> None:
    """Everything still runs and answers, nothing is left taken, and a request completes."""
    cluster = target.cluster
    assert cluster.b.running()
    assert all(agent.running() for agent in cluster.agents)
    for url in target.urls.values():
        assert httpx.get(f"{url}/health", timeout=5).text == "OK"
    deadline = time.monotonic() + SETTLE_S
    while True:
        snapshot = cluster.agents_snapshot()
        buffered = httpx.get(f"{target.urls['management']}/api/v1/buffered_requests", timeout=5)
        settled = busy(snapshot) == 0 and buffered.json()["buffered_requests_current"] == 0
        if settled and len(snapshot.agents) == 1:
            break
        assert time.monotonic() < deadline, f"still taken: {snapshot}, {buffered.text}"
        time.sleep(0.1)
    response = httpx.post(
        f"{target.urls['inference']}/api/v1/continue_from_raw_prompt",
        json=raw_prompt_body(2),
        timeout=30,
    )
    assert '"Done"' in response.text.splitlines()[-1], response.text
    assert "Traceback" not in cluster.b.log_text()


@pytest.mark.parametrize("model", SEED_MODELS, ids=lambda model: model.__name__)
def test_every_seed_is_a_valid_body(model: type[BaseModel]) -> None:
    (route,) = [r for r in BODY_ROUTES if r.seed is SEEDS_BY_MODEL[model]]
    codec.decode(codec.adapter_for(model), json.dumps(route.seed))


SEEDS_BY_MODEL = dict(zip(SEED_MODELS, (r.seed for r in BODY_ROUTES), strict=True))


@pytest.mark.parametrize("route", BODY_ROUTES, ids=lambda r: f"{r.method} {r.path}")
def test_bodies_never_get_a_server_error(
    route: Route, target: Target, client: httpx.Client
) -> None:
    @FUZZ
    @given(
        body=bodies(route.seed) | route.well_formed.map(json.dumps).map(str.encode),
        content_type=CONTENT_TYPES,
    )
    def fuzz(body: bytes, content_type: str) -> None:
        url = target.urls[route.service] + route.path
        status = look(client, route.method, url, body, content_type)
        assert status is None or status < 500 or status in route.refusals, (status, body)

    fuzz()
    assert_cluster_serves(target)


@pytest.mark.parametrize("route", OTHER_ROUTES, ids=lambda r: r.path)
def test_other_routes_never_get_a_server_error(
    route: Route, target: Target, client: httpx.Client
) -> None:
    @settings(FUZZ, max_examples=10)
    @given(body=bodies({}), method=METHODS, path_id=st.text(min_size=1, max_size=20))
    def fuzz(body: bytes, method: str, path_id: str) -> None:
        path = route.path.replace("{id}", quote(path_id, safe=""))
        status = look(client, method, target.urls[route.service] + path, body, "application/json")
        assert status is not None and status < 500, (status, method, path, body)

    fuzz()
    assert_cluster_serves(target)


# The sockets. Frames are valid messages of every type mutated, random JSON, or binary.

INFERENCE_MESSAGES = [
    {"Request": {"id": "r1", "request": {"ContinueFromRawPrompt": RAW_PROMPT}}},
    {"Request": {"id": "r2", "request": {"ContinueFromConversationHistory": CONVERSATION}}},
    {"Request": {"id": "r3", "request": {"GenerateEmbeddingBatch": EMBEDDINGS}}},
    {"Notification": {"StopRespondingTo": "r1"}},
    {"Error": {"request_id": "r1", "error": {"code": 500, "description": "client error"}}},
]
USAGE = codec.to_jsonable(codec.adapter_for(TokenUsage), TokenUsage.zero())
AGENT_MESSAGES = [
    {"Notification": {"UpdateAgentStatus": {"slot_aggregated_status_snapshot": STATUS}}},
    {"Notification": "DeregisterAgent"},
    *(
        {"Response": {"generated_by": None, "request_id": "x", "response": response}}
        for response in (
            {"GeneratedToken": {"ContentToken": "Hi"}},
            {"GeneratedToken": {"Done": {"usage": USAGE}}},
            {"Embedding": "Done"},
            {"ChatTemplateOverride": {"content": "{{ x }}"}},
            {"ModelMetadata": {"metadata": {"k": "v"}}},
        )
    ),
    {"Error": {"request_id": "x", "error": {"code": 500, "description": "agent error"}}},
]
REGISTER = {
    "Notification": {"RegisterAgent": {"name": "fuzz", "slot_aggregated_status_snapshot": STATUS}}
}


def frames(seeds: list[Any]) -> st.SearchStrategy[str | bytes]:
    return st.one_of(
        st.sampled_from(seeds).flatmap(mutated).map(json.dumps),
        json_values.map(json.dumps),
        st.binary(max_size=32),
        st.sampled_from(seeds).map(json.dumps),
    )


def test_every_socket_seed_is_a_valid_message() -> None:
    for message in INFERENCE_MESSAGES:
        decode_inference_client_message(json.dumps(message))
    for message in [REGISTER, *AGENT_MESSAGES]:
        decode_agent_to_balancer_message(json.dumps(message))


SENTINEL = {"Request": {"id": "sentinel", "request": {"GenerateEmbeddingBatch": EMBEDDINGS}}}


def socket_url(target: Target, service: str, path: str) -> str:
    return target.urls[service].replace("http://", "ws://") + path


def receive_until(socket: ClientConnection, done: Callable[[dict[str, Any]], bool]) -> None:
    deadline = time.monotonic() + 10
    while not done(json.loads(socket.recv(timeout=max(deadline - time.monotonic(), 0.01)))):
        pass


def test_inference_socket_frames_never_break_the_socket(target: Target) -> None:
    url = socket_url(target, "inference", "/api/v1/inference_socket")

    @FUZZ
    @given(sent=st.lists(frames(INFERENCE_MESSAGES), min_size=1, max_size=4))
    def fuzz(sent: list[str | bytes]) -> None:
        with connect(url) as socket:
            for frame in sent:
                socket.send(frame)
            # Still served: an embedding request in token mode is refused at once, then Done.
            sentinel = {
                "Request": {"id": "sentinel", "request": {"GenerateEmbeddingBatch": EMBEDDINGS}}
            }
            socket.send(json.dumps(sentinel))
            receive_until(
                socket,
                lambda frame: (
                    frame.get("Response", {}).get("request_id") == "sentinel"
                    and frame["Response"]["response"] == {"Embedding": "Done"}
                ),
            )

    fuzz()
    assert_cluster_serves(target)


def test_agent_socket_frames_never_break_the_balancer(target: Target) -> None:
    url = socket_url(target, "management", "/api/v1/agent_socket/")

    @FUZZ
    @given(
        agent_id=st.text(alphabet="abcdefghij0123456789_-", min_size=1, max_size=12),
        first=st.one_of(st.just(json.dumps(REGISTER)), frames([REGISTER])),
        rest=st.lists(frames(AGENT_MESSAGES), max_size=4),
    )
    def fuzz(agent_id: str, first: str | bytes, rest: list[str | bytes]) -> None:
        with connect(url + f"fuzz-{agent_id}") as socket, contextlib.suppress(ConnectionClosed):
            for frame in [first, *rest]:
                socket.send(frame)
        # The fuzzing agent is gone from the pool once its socket is.
        poll_until(
            lambda: len(target.cluster.agents_snapshot().agents) == 1,
            timeout=5,
            what="the fuzzing agent to leave",
            interval=0.02,
        )

    fuzz()
    assert_cluster_serves(target)


def test_a_binary_frame_from_an_agent_is_ignored(target: Target) -> None:
    """Found by the fuzzing above: it used to end the agent's socket with a traceback."""
    with connect(socket_url(target, "management", "/api/v1/agent_socket/binary")) as socket:
        socket.send(json.dumps(REGISTER))
        socket.send(b"\x00\x01")
        socket.send(json.dumps(AGENT_MESSAGES[0]))
        receive_until(socket, lambda frame: "SetState" in frame.get("Notification", {}))
        names = sorted(str(a.name) for a in target.cluster.agents_snapshot().agents)
        assert names == ["agent-1", "fuzz"]
    assert "Traceback" not in target.cluster.b.log_text()


def test_monitor_socket_frames_are_ignored(target: Target) -> None:
    url = socket_url(target, "management", "/api/v1/monitor_socket")

    @settings(FUZZ, max_examples=10)
    @given(sent=st.lists(frames(INFERENCE_MESSAGES), min_size=1, max_size=4))
    def fuzz(sent: list[str | bytes]) -> None:
        with connect(url) as socket:
            socket.recv(timeout=5)
            for frame in sent:
                socket.send(frame)
            assert "server_time" in json.loads(socket.recv(timeout=5))

    fuzz()
    assert_cluster_serves(target)
