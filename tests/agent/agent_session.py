"""One agent process shared by a test module, and requests to it through the test endpoint."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paddler_tui.protocol.agent_socket import ChatTemplateOverride, GetChatTemplateOverride
from paddler_tui.protocol.conversation import ConversationMessage
from paddler_tui.protocol.embedding import (
    EmbeddingInputDocument,
    EmbeddingNormalizationMethod,
    EmbeddingResult,
)
from paddler_tui.protocol.envelope import (
    ContinueFromConversationHistory,
    ContinueFromRawPrompt,
    GenerateEmbeddingBatch,
)
from paddler_tui.protocol.generated_token import GeneratedTokenResult, token_text
from paddler_tui.protocol.requests import (
    ContinueFromConversationHistoryParams,
    ContinueFromRawPromptParams,
    GenerateEmbeddingBatchParams,
)
from tests.agent.balancer_endpoint import AgentRecord, BalancerEndpoint
from tests.agent.conftest import desired_state
from tests.support.cluster import AgentProcess, cluster_env


@dataclass
class AgentSession:
    endpoint: BalancerEndpoint
    agent: AgentRecord
    process: AgentProcess | None  # None: the agent runs in the test's process
    slots: int

    async def apply(self, *, template: str | None = None, **parameters: Any) -> None:
        """Send a state and wait until the agent serves it (in place or by reloading)."""
        await self.endpoint.set_state(self.agent, desired_state(template=template, **parameters))
        async with asyncio.timeout(120):
            while True:
                status = self.agent.status
                if status.state_application_status == "Applied" and status.slots_total:
                    request_id = await self.endpoint.request(self.agent, GetChatTemplateOverride())
                    override = await self.endpoint.next_response(self.agent, request_id)
                    assert isinstance(override, ChatTemplateOverride)
                    content = override.value.content if override.value is not None else None
                    if content == template:
                        return
                await asyncio.sleep(0.05)

    async def generate(
        self, request: ContinueFromConversationHistory | ContinueFromRawPrompt
    ) -> list[GeneratedTokenResult]:
        request_id = await self.endpoint.request(self.agent, request)
        return await self.endpoint.tokens(self.agent, request_id)

    async def embed(
        self, documents: list[tuple[str, str]], method: EmbeddingNormalizationMethod
    ) -> list[EmbeddingResult]:
        params = GenerateEmbeddingBatchParams(
            input_batch=[EmbeddingInputDocument(id=i, content=text) for i, text in documents],
            normalization_method=method,
        )
        request_id = await self.endpoint.request(self.agent, GenerateEmbeddingBatch(value=params))
        return await self.endpoint.embeddings(self.agent, request_id)

    async def idle(self) -> None:
        await self.endpoint.wait_for_status(self.agent, lambda s: s.slots_processing == 0, 10)


@contextlib.asynccontextmanager
async def agent_session(tmp: Path, *flags: str, slots: int = 4) -> AsyncIterator[AgentSession]:
    """An agent process started with ``flags``, registered with a test endpoint."""
    async with BalancerEndpoint().running() as endpoint:
        process = AgentProcess(
            endpoint.addr,
            *flags,
            slots=slots,
            name="test-agent",
            log=tmp / "agent.log",
            env=cluster_env(tmp),
        )
        try:
            yield AgentSession(endpoint, await endpoint.agent(), process, slots)
        finally:
            process.kill()
            # Shown by pytest only when a test failed.
            print(process.log_tail())


def raw_prompt(text: str, max_tokens: int, **extra: Any) -> ContinueFromRawPrompt:
    return ContinueFromRawPrompt(
        value=ContinueFromRawPromptParams(raw_prompt=text, max_tokens=max_tokens, **extra)
    )


def conversation(
    *turns: str, max_tokens: int, enable_thinking: bool = False, **extra: Any
) -> ContinueFromConversationHistory:
    """Alternating user and assistant turns, starting with the user."""
    history = [
        ConversationMessage(role="user" if index % 2 == 0 else "assistant", content=text)
        for index, text in enumerate(turns)
    ]
    return ContinueFromConversationHistory(
        value=ContinueFromConversationHistoryParams(
            add_generation_prompt=True,
            conversation_history=history,
            enable_thinking=enable_thinking,
            max_tokens=max_tokens,
            **extra,
        )
    )


def text_of(results: list[GeneratedTokenResult], kind: type) -> str:
    return "".join(token_text(r) or "" for r in results if isinstance(r, kind))
