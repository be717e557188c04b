"""``paddler-tui agent`` end to end: a real agent process, the real model, a test endpoint."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from paddler_tui.models import default_model_path
from paddler_tui.protocol.agent_socket import ChatTemplateOverride, ModelMetadataResponse
from paddler_tui.protocol.conversation import ConversationMessage
from paddler_tui.protocol.envelope import (
    ContinueFromConversationHistory,
    ContinueFromRawPrompt,
    GeneratedToken,
)
from paddler_tui.protocol.generated_token import (
    ChatTemplateError,
    ContentToken,
    Done,
    GeneratedTokenResult,
    GrammarIncompatibleWithThinking,
    SamplerError,
)
from paddler_tui.protocol.grammar import GbnfGrammar
from paddler_tui.protocol.requests import (
    ContinueFromConversationHistoryParams,
    ContinueFromRawPromptParams,
)
from tests.agent.balancer_endpoint import AgentRecord, BalancerEndpoint
from tests.agent.conftest import desired_state
from tests.support.cluster import AgentProcess

pytestmark = pytest.mark.slow

StartAgent = Callable[..., AgentProcess]


def raw_prompt(text: str, max_tokens: int) -> ContinueFromRawPrompt:
    return ContinueFromRawPrompt(
        value=ContinueFromRawPromptParams(raw_prompt=text, max_tokens=max_tokens)
    )


def conversation(question: str, max_tokens: int, **extra: Any) -> ContinueFromConversationHistory:
    return ContinueFromConversationHistory(
        value=ContinueFromConversationHistoryParams(
            add_generation_prompt=True,
            conversation_history=[ConversationMessage(role="user", content=question)],
            enable_thinking=False,
            max_tokens=max_tokens,
            **extra,
        )
    )


def text_of(results: list[GeneratedTokenResult]) -> str:
    return "".join(r.value for r in results if isinstance(r, ContentToken))


async def loaded_agent(
    endpoint: BalancerEndpoint, start_agent: StartAgent, slots: int = 4, **parameters: Any
) -> AgentRecord:
    start_agent(slots=slots)
    agent = await endpoint.agent()
    await endpoint.set_state(agent, desired_state(**parameters))
    await endpoint.wait_for_status(
        agent, lambda s: s.state_application_status == "Applied" and s.slots_total == slots
    )
    return agent


async def test_registers_first_then_reports_slots_once_loaded(
    endpoint: BalancerEndpoint, start_agent: StartAgent
) -> None:
    start_agent(slots=3)
    agent = await endpoint.agent()
    first = agent.snapshots[0]
    assert agent.name == "test-agent"
    assert first.desired_slots_total == 3
    assert first.slots_total == 0
    assert first.model_path is None
    await endpoint.set_state(agent, desired_state())
    status = await endpoint.wait_for_status(agent, lambda s: s.slots_total == 3)
    assert status.state_application_status == "Applied"
    assert status.model_path == str(default_model_path())
    assert status.issues == []
    versions = [snapshot.version for snapshot in agent.snapshots]
    assert versions == sorted(versions)
    assert versions[-1] > versions[0]


async def test_status_is_sent_every_second_without_changes(
    endpoint: BalancerEndpoint, start_agent: StartAgent
) -> None:
    start_agent()
    agent = await endpoint.agent()
    count = len(agent.snapshots)
    await asyncio.sleep(2.5)
    assert len(agent.snapshots) >= count + 2


async def test_raw_prompt_with_max_tokens_yields_exactly_that_many_tokens(
    endpoint: BalancerEndpoint, start_agent: StartAgent
) -> None:
    agent = await loaded_agent(endpoint, start_agent)
    request_id = await endpoint.request(agent, raw_prompt("The capital of France is", 5))
    results = await endpoint.tokens(agent, request_id)
    assert len(results) == 6
    assert all(isinstance(result, ContentToken) for result in results[:5])
    done = results[-1]
    assert isinstance(done, Done)
    assert done.usage.content_tokens == 5
    assert done.usage.prompt_tokens > 0


async def test_concurrent_greedy_conversations_match_each_one_alone(
    endpoint: BalancerEndpoint, start_agent: StartAgent
) -> None:
    agent = await loaded_agent(endpoint, start_agent)
    questions = [
        "What is the capital of France?",
        "Write a haiku about the sea.",
        "List three prime numbers.",
        "Who wrote Hamlet?",
    ]
    alone = []
    for question in questions:
        request_id = await endpoint.request(agent, conversation(question, 24))
        alone.append(text_of(await endpoint.tokens(agent, request_id)))
    ids = [await endpoint.request(agent, conversation(q, 24)) for q in questions]
    together = await asyncio.gather(*(endpoint.tokens(agent, i) for i in ids))
    assert [text_of(results) for results in together] == alone
    assert len(set(alone)) == 4


async def test_stopping_after_the_first_token_frees_the_slot(
    endpoint: BalancerEndpoint, start_agent: StartAgent
) -> None:
    agent = await loaded_agent(endpoint, start_agent)
    request_id = await endpoint.request(agent, raw_prompt("Once upon a time", 2000))
    first = await endpoint.next_response(agent, request_id)
    assert isinstance(first, GeneratedToken)
    assert isinstance(first.value, ContentToken)
    await endpoint.stop(agent, request_id)
    await endpoint.wait_for_status(agent, lambda s: s.slots_processing == 0, timeout=5)
    # The agent finishes a stopped request with Done and its partial usage, far short of 2000.
    rest = await endpoint.tokens(agent, request_id)
    assert isinstance(rest[-1], Done)
    assert rest[-1].usage.content_tokens + rest[-1].usage.undeterminable_tokens < 200
    next_id = await endpoint.request(agent, raw_prompt("Hello", 3))
    assert isinstance((await endpoint.tokens(agent, next_id))[-1], Done)


async def test_a_stop_that_arrives_right_behind_its_request_is_not_lost(
    endpoint: BalancerEndpoint, start_agent: StartAgent
) -> None:
    agent = await loaded_agent(endpoint, start_agent, slots=2)
    # A busy agent reads the next frames in one go, before the request's task has run.
    busy = await endpoint.request(agent, raw_prompt("1, 2, 3, 4, 5, 6, 7, 8,", 200))
    await endpoint.next_response(agent, busy)
    for _ in range(5):
        request_id = await endpoint.request(agent, raw_prompt("Once upon a time", 2000))
        await endpoint.stop(agent, request_id)
        results = await endpoint.tokens(agent, request_id, timeout=30)
        done = results[-1]
        assert isinstance(done, Done)
        assert done.usage.content_tokens < 100
    await endpoint.stop(agent, busy)
    await endpoint.wait_for_status(agent, lambda s: s.slots_processing == 0, timeout=5)


@pytest.mark.parametrize(
    "prompt",
    [
        # Generation outgrows the context: counting goes on and on without penalties.
        "1, 2, 3, 4, 5, 6, 7, 8,",
        # The prompt alone is larger than the context.
        " ".join(str(n) for n in range(300)),
    ],
    ids=["generation", "prompt"],
)
async def test_a_context_too_small_evicts_with_a_sampler_error(
    endpoint: BalancerEndpoint, start_agent: StartAgent, prompt: str
) -> None:
    agent = await loaded_agent(
        endpoint,
        start_agent,
        slots=1,
        context_size=256,
        penalty_last_n=0,
        penalty_repeat=1.0,
        penalty_presence=0.0,
    )
    request_id = await endpoint.request(agent, raw_prompt(prompt, 4096))
    results = await endpoint.tokens(agent, request_id)
    assert results[-1] == SamplerError(value="Request evicted due to KV cache pressure")
    await endpoint.wait_for_status(agent, lambda s: s.slots_processing == 0, timeout=5)
    next_id = await endpoint.request(agent, raw_prompt("Hello", 3))
    assert isinstance((await endpoint.tokens(agent, next_id))[-1], Done)


async def test_an_identical_state_does_not_reload_and_sampling_changes_apply_in_place(
    endpoint: BalancerEndpoint, start_agent: StartAgent
) -> None:
    agent = await loaded_agent(endpoint, start_agent)
    seen = len(agent.snapshots)
    await endpoint.set_state(agent, desired_state())
    await endpoint.set_state(agent, desired_state(temperature=0.5, top_k=10))
    await asyncio.sleep(1.5)
    assert all(s.slots_total == 4 for s in agent.snapshots[seen:])
    request_id = await endpoint.request(agent, raw_prompt("Hello", 3))
    assert isinstance((await endpoint.tokens(agent, request_id))[-1], Done)
    # A context change does reload.
    await endpoint.set_state(agent, desired_state(context_size=1024))
    await endpoint.wait_for_status(agent, lambda s: s.slots_total == 0)
    await endpoint.wait_for_status(agent, lambda s: s.slots_total == 4)


async def test_metadata_and_template_override_are_answered(
    endpoint: BalancerEndpoint, start_agent: StartAgent
) -> None:
    start_agent()
    agent = await endpoint.agent()
    from paddler_tui.protocol.agent_socket import GetChatTemplateOverride, GetModelMetadata

    request_id = await endpoint.request(agent, GetModelMetadata())
    assert await endpoint.next_response(agent, request_id) == ModelMetadataResponse(value=None)
    template = "{% for m in messages %}{{ m.content }}{% endfor %}"
    await endpoint.set_state(agent, desired_state(template=template))
    await endpoint.wait_for_status(agent, lambda s: s.slots_total == 4)
    assert agent.status.uses_chat_template_override
    request_id = await endpoint.request(agent, GetModelMetadata())
    metadata = await endpoint.next_response(agent, request_id)
    assert isinstance(metadata, ModelMetadataResponse) and metadata.value is not None
    assert metadata.value.metadata["general.architecture"] == "llama"
    assert "tokenizer.chat_template" in metadata.value.metadata
    request_id = await endpoint.request(agent, GetChatTemplateOverride())
    override = await endpoint.next_response(agent, request_id)
    assert isinstance(override, ChatTemplateOverride)
    assert override.value is not None and override.value.content == template


async def test_render_errors_and_grammar_with_thinking_end_the_request(
    endpoint: BalancerEndpoint, start_agent: StartAgent
) -> None:
    start_agent()
    agent = await endpoint.agent()
    await endpoint.set_state(agent, desired_state(template="{{ raise_exception('no way') }}"))
    await endpoint.wait_for_status(agent, lambda s: s.slots_total == 4)
    request_id = await endpoint.request(agent, conversation("Hi", 5))
    results = await endpoint.tokens(agent, request_id)
    assert results == [
        ChatTemplateError(
            value="test-agent: failed to render chat template: "
            "Model's chat template raised an exception: 'no way'"
        )
    ]
    grammar = GbnfGrammar(grammar='root ::= "yes"', root="root")
    params = conversation("Hi", 5, grammar=grammar).value.model_copy(
        update={"enable_thinking": True}
    )
    request_id = await endpoint.request(agent, ContinueFromConversationHistory(value=params))
    results = await endpoint.tokens(agent, request_id)
    assert results == [
        GrammarIncompatibleWithThinking(
            value="Grammar constraints are incompatible with thinking mode"
        )
    ]
    await endpoint.wait_for_status(agent, lambda s: s.slots_processing == 0)


async def test_sigterm_deregisters_and_exits_within_five_seconds_mid_request(
    endpoint: BalancerEndpoint, start_agent: StartAgent
) -> None:
    process = start_agent()
    agent = await endpoint.agent()
    await endpoint.set_state(agent, desired_state())
    await endpoint.wait_for_status(agent, lambda s: s.slots_total == 4)
    request_id = await endpoint.request(agent, raw_prompt("Once upon a time", 4000))
    await endpoint.next_response(agent, request_id)
    started = time.monotonic()
    process.signal(signal.SIGTERM)
    assert await asyncio.to_thread(process.wait, 10) == 0
    assert time.monotonic() - started < 5
    assert agent.deregistered


async def test_reconnects_with_the_same_id_without_reloading(
    endpoint: BalancerEndpoint, start_agent: StartAgent
) -> None:
    agent = await loaded_agent(endpoint, start_agent)
    agent_id = agent.agent_id
    await agent.socket.close()
    async with asyncio.timeout(10):
        while endpoint.agents[agent_id] is agent or not endpoint.agents[agent_id].snapshots:
            await asyncio.sleep(0.05)
    again = endpoint.agents[agent_id]
    assert again.registrations == 2
    # Registration reports the model as still loaded: nothing was reloaded.
    assert again.snapshots[0].slots_total == 4
    await endpoint.set_state(again, desired_state())
    request_id = await endpoint.request(again, raw_prompt("Hello", 3))
    assert isinstance((await endpoint.tokens(again, request_id))[-1], Done)
    assert all(s.slots_total == 4 for s in again.snapshots)


async def test_a_second_agent_process_gets_its_own_id(
    endpoint: BalancerEndpoint, start_agent: StartAgent, tmp_path: Path
) -> None:
    start_agent(name="one")
    start_agent(name="two")
    async with asyncio.timeout(30):
        while len(endpoint.agents) < 2:
            await asyncio.sleep(0.05)
    assert len(set(endpoint.agents)) == 2
