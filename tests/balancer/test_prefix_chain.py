"""The prefix chain of a request: equal prefixes give equal leading hashes, and nothing else."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from paddler_tui.protocol.conversation import ConversationMessage, ImageUrl, ImageUrlPart, TextPart
from paddler_tui.protocol.envelope import ContinueFromConversationHistory, ContinueFromRawPrompt
from paddler_tui.protocol.requests import (
    ContinueFromConversationHistoryParams,
    ContinueFromRawPromptParams,
)
from paddler_tui.protocol.tool import FunctionDefinition, Tool
from paddler_tui.server.balancer.routing.prefix_chain import (
    RAW_PROMPT_CHUNK_CHARS,
    conversation_chain,
    raw_prompt_chain,
    request_chain,
)

messages = st.lists(
    st.builds(
        ConversationMessage,
        role=st.sampled_from(["system", "user", "assistant"]),
        content=st.text(max_size=20),
    ),
    max_size=6,
)


def conversation(
    *turns: tuple[str, str], tools: list[Tool] | None = None
) -> ContinueFromConversationHistory:
    return ContinueFromConversationHistory(
        value=ContinueFromConversationHistoryParams(
            add_generation_prompt=True,
            conversation_history=[
                ConversationMessage(role=role, content=content) for role, content in turns
            ],
            enable_thinking=False,
            max_tokens=8,
            tools=tools or [],
        )
    )


def raw(prompt: str) -> ContinueFromRawPrompt:
    return ContinueFromRawPrompt(value=ContinueFromRawPromptParams(raw_prompt=prompt, max_tokens=8))


@given(messages, messages)
def test_conversations_share_exactly_their_common_leading_messages(
    first: list[ConversationMessage], second: list[ConversationMessage]
) -> None:
    common = 0
    while common < min(len(first), len(second)) and first[common] == second[common]:
        common += 1

    a, b = conversation_chain(first, None), conversation_chain(second, None)

    assert (len(a), len(b)) == (len(first), len(second))
    assert a[:common] == b[:common]
    # Past the first difference no hash matches, at any position (barring a 64-bit collision).
    assert not set(a[common:]) & set(b)


def test_a_later_turn_extends_the_earlier_turns_chain() -> None:
    turn_one = conversation(("system", "Be brief."), ("user", "Hi"))
    turn_two = conversation(
        ("system", "Be brief."), ("user", "Hi"), ("assistant", "Hello"), ("user", "Bye")
    )

    one, two = request_chain(turn_one), request_chain(turn_two)

    assert two[: len(one)] == one
    assert len(two) == 4


def test_role_and_content_both_count() -> None:
    as_user = request_chain(conversation(("user", "Hi")))

    assert as_user != request_chain(conversation(("system", "Hi")))
    assert as_user != request_chain(conversation(("user", "Hi!")))


def test_content_parts_count_their_text_and_images() -> None:
    def with_parts(*parts: TextPart | ImageUrlPart) -> ConversationMessage:
        return ConversationMessage(role="user", content=list(parts))

    text = with_parts(TextPart(text="What is this?"))
    with_image = with_parts(
        TextPart(text="What is this?"), ImageUrlPart(image_url=ImageUrl(url="data:a"))
    )
    other_image = with_parts(
        TextPart(text="What is this?"), ImageUrlPart(image_url=ImageUrl(url="data:b"))
    )

    chains = {conversation_chain([m], None) for m in (text, with_image, other_image)}

    assert len(chains) == 3
    # The same parts give the same chain.
    assert conversation_chain([with_image], None) == conversation_chain([with_image], None)


def test_different_affinity_keys_never_match() -> None:
    history = [ConversationMessage(role="user", content="Hi")]

    keyed = conversation_chain(history, "alice")

    assert keyed == conversation_chain(history, "alice")
    assert not set(keyed) & set(conversation_chain(history, "bob"))
    assert not set(keyed) & set(conversation_chain(history, None))


def test_tools_are_part_of_the_seed() -> None:
    tool = Tool(function=FunctionDefinition(name="f", description="d"))
    plain = request_chain(conversation(("user", "Hi")))

    with_tool = request_chain(conversation(("user", "Hi"), tools=[tool]))

    assert not set(plain) & set(with_tool)
    assert with_tool == request_chain(conversation(("user", "Hi"), tools=[tool]))


def test_a_raw_prompt_hashes_its_whole_chunks_only() -> None:
    chunk = RAW_PROMPT_CHUNK_CHARS

    assert raw_prompt_chain("x" * (chunk - 1), None) == ()
    assert len(raw_prompt_chain("x" * chunk, None)) == 1
    assert len(raw_prompt_chain("x" * (3 * chunk + 5), None)) == 3


@given(st.text(min_size=2 * RAW_PROMPT_CHUNK_CHARS, max_size=3 * RAW_PROMPT_CHUNK_CHARS), st.text())
def test_a_longer_raw_prompt_extends_the_shorter_ones_chain(prompt: str, more: str) -> None:
    shorter = request_chain(raw(prompt))

    longer = request_chain(raw(prompt + more))

    assert longer[: len(shorter)] == shorter


def test_raw_prompts_and_conversations_never_match() -> None:
    text = "y" * RAW_PROMPT_CHUNK_CHARS

    assert not set(request_chain(raw(text))) & set(request_chain(conversation(("user", text))))


def test_a_raw_prompt_keyed_differently_never_matches() -> None:
    text = "z" * (2 * RAW_PROMPT_CHUNK_CHARS)

    assert not set(request_chain(raw(text), "a")) & set(request_chain(raw(text), "b"))
