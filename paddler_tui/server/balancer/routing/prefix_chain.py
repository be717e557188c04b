"""The rolling hash chain of a request's prompt, for routing by shared prefix.

Element ``i`` of a chain hashes element ``i - 1`` with the next piece of the prompt: the next
message of a conversation (its role and content), or the next whole chunk of a raw prompt. Two
requests therefore share their first ``n`` hashes exactly when their prompts share the first
``n`` pieces (up to hash collisions), and one hash stands for the whole prefix before it.

The chain starts from a seed made of the request's affinity key (OpenAI's ``prompt_cache_key``
or ``user``) and, for conversations, its tools (templates render them ahead of the messages),
so requests that differ there never match. Python's ``hash`` is enough: chains live only in the
balancer process that computed them.
"""

from __future__ import annotations

import json

from paddler_tui.protocol.conversation import ConversationMessage, TextPart
from paddler_tui.protocol.envelope import ContinueFromConversationHistory, ContinueFromRawPrompt

PrefixChain = tuple[int, ...]

# Raw prompts have no message boundaries; a chunk is long enough to be worth a cache hit and
# short enough that a shared prefix is seldom lost to a partial last chunk.
RAW_PROMPT_CHUNK_CHARS = 256


def request_chain(
    request: ContinueFromConversationHistory | ContinueFromRawPrompt,
    affinity_key: str | None = None,
) -> PrefixChain:
    if isinstance(request, ContinueFromRawPrompt):
        return raw_prompt_chain(request.value.raw_prompt, affinity_key)
    params = request.value
    tools = (
        json.dumps([tool.model_dump(mode="json") for tool in params.tools], sort_keys=True)
        if params.tools
        else None
    )
    return conversation_chain(params.conversation_history, affinity_key, tools)


def conversation_chain(
    messages: list[ConversationMessage], affinity_key: str | None, tools: str | None = None
) -> PrefixChain:
    link = hash(("conversation", affinity_key, tools))
    chain: list[int] = []
    for message in messages:
        link = hash((link, message.role, _content_key(message)))
        chain.append(link)
    return tuple(chain)


def raw_prompt_chain(prompt: str, affinity_key: str | None) -> PrefixChain:
    """Only whole chunks count: a partial last chunk would never match a longer prompt."""
    link = hash(("raw_prompt", affinity_key))
    chain: list[int] = []
    for end in range(RAW_PROMPT_CHUNK_CHARS, len(prompt) + 1, RAW_PROMPT_CHUNK_CHARS):
        link = hash((link, prompt[end - RAW_PROMPT_CHUNK_CHARS : end]))
        chain.append(link)
    return tuple(chain)


def _content_key(message: ConversationMessage) -> str | tuple[tuple[str, str], ...]:
    content = message.content
    if isinstance(content, str):
        return content
    return tuple(
        ("text", part.text) if isinstance(part, TextPart) else ("image_url", part.image_url.url)
        for part in content
    )
