"""Requests on the agent: admission, prompt building, and streaming engine output as responses.

The engine thread reports per-job events through a callback; each request hops them onto the
event loop with ``call_soon_threadsafe`` and turns them into ``GeneratedToken`` responses. The
count of requests in here is the agent's ``slots_processing``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from paddler_tui.protocol.agent_socket import (
    ChatTemplateOverride,
    FromAgentResponse,
    ModelMetadataResponse,
)
from paddler_tui.protocol.agent_status import ModelMetadata
from paddler_tui.protocol.desired_state import ChatTemplate as ChatTemplateContent
from paddler_tui.protocol.envelope import GeneratedToken
from paddler_tui.protocol.generated_token import (
    ChatTemplateError,
    ContentToken,
    Done,
    GeneratedTokenResult,
    GrammarIncompatibleWithThinking,
    GrammarInitializationFailed,
    GrammarRejectedModelOutput,
    GrammarSyntaxError,
    SamplerError,
    TokenGenerationDisabled,
)
from paddler_tui.protocol.grammar import GbnfGrammar, GrammarConstraint
from paddler_tui.protocol.inference_parameters import InferenceParameters
from paddler_tui.protocol.requests import (
    ContinueFromConversationHistoryParams,
    ContinueFromRawPromptParams,
)
from paddler_tui.protocol.usage import TokenUsage
from paddler_tui.server.agent.chat_template import (
    ChatTemplate,
    ChatTemplateRenderError,
    conversation_to_template_messages,
)
from paddler_tui.server.agent.engine_types import (
    EngineEvent,
    EngineSettings,
    GenerationJob,
    JobFailed,
    JobFinished,
    SamplingSettings,
    TokenSampled,
)
from paddler_tui.server.agent.status import AgentStatus

if TYPE_CHECKING:
    from paddler_tui.server.agent.engine import Engine

logger = logging.getLogger(__name__)

SendResponse = Callable[[str, FromAgentResponse], None]

EMBEDDINGS_ONLY = "Token generation is disabled: this agent is running in embeddings-only mode"
GRAMMAR_WITH_THINKING = "Grammar constraints are incompatible with thinking mode"

_FAILURES: dict[str, Callable[[str], GeneratedTokenResult]] = {
    "evicted": lambda message: SamplerError(value=message),
    "sampler": lambda message: SamplerError(value=message),
    "internal": lambda message: SamplerError(value=message),
    "grammar_syntax": lambda message: GrammarSyntaxError(value=message),
    "grammar_init": lambda message: GrammarInitializationFailed(value=message),
    "grammar_rejected": lambda message: GrammarRejectedModelOutput(value=message),
}


@dataclass
class LoadedModel:
    engine: Engine
    engine_settings: EngineSettings
    builtin_chat_template: str | None
    parameters: InferenceParameters
    chat_template: ChatTemplate | None = None
    uses_override: bool = False


class _PromptRejectedError(Exception):
    def __init__(self, result: GeneratedTokenResult) -> None:
        super().__init__(str(result))
        self.result = result


def sampling_settings(parameters: InferenceParameters) -> SamplingSettings:
    return SamplingSettings(
        temperature=parameters.temperature,
        top_k=parameters.top_k,
        top_p=parameters.top_p,
        min_p=parameters.min_p,
        penalty_last_n=parameters.penalty_last_n,
        penalty_repeat=parameters.penalty_repeat,
        penalty_frequency=parameters.penalty_frequency,
        penalty_presence=parameters.penalty_presence,
    )


class InferenceSlots:
    """The loaded model and every request in flight on it."""

    def __init__(self, *, status: AgentStatus, agent_name: str | None) -> None:
        self._status = status
        self._agent_name = agent_name or "agent"
        self.loaded: LoadedModel | None = None
        self._requests: dict[str, asyncio.Task[None]] = {}
        self._idle = asyncio.Event()
        self._idle.set()

    # Model lifecycle (driven by the state applier).

    async def load(self, settings: EngineSettings) -> None:
        from paddler_tui.server.agent.engine import Engine

        engine = await asyncio.to_thread(Engine.load, settings)
        self.loaded = LoadedModel(
            engine=engine,
            engine_settings=settings,
            builtin_chat_template=engine.chat_template,
            parameters=InferenceParameters.default(),
        )

    def update_in_place(
        self,
        *,
        parameters: InferenceParameters,
        chat_template: ChatTemplate | None,
        uses_override: bool,
    ) -> None:
        assert self.loaded is not None
        self.loaded.parameters = parameters
        self.loaded.chat_template = chat_template
        self.loaded.uses_override = uses_override

    async def drain_and_unload(self) -> None:
        await self._idle.wait()
        loaded, self.loaded = self.loaded, None
        if loaded is not None:
            await asyncio.to_thread(loaded.engine.close)

    async def close(self) -> None:
        """Stop everything now (shutdown): requests end, the engine is freed."""
        self.stop_all()
        loaded, self.loaded = self.loaded, None
        if loaded is not None:
            await asyncio.to_thread(loaded.engine.close)
        if self._requests:
            await asyncio.wait(list(self._requests.values()), timeout=2)

    # Requests (driven by the balancer connection).

    def start(
        self,
        request_id: str,
        params: ContinueFromConversationHistoryParams | ContinueFromRawPromptParams,
        send: SendResponse,
    ) -> None:
        if request_id in self._requests:
            logger.warning("ignoring a second request with the in-flight id %s", request_id)
            return
        task = asyncio.create_task(self._serve(request_id, params, send), name=request_id)
        self._requests[request_id] = task
        self._idle.clear()
        self._status.update(slots_processing=len(self._requests))
        task.add_done_callback(lambda _: self._finished(request_id))

    def stop(self, request_id: str) -> None:
        loaded = self.loaded
        if request_id in self._requests and loaded is not None:
            loaded.engine.stop(request_id)

    def stop_all(self) -> None:
        for request_id in list(self._requests):
            self.stop(request_id)

    def model_metadata(self) -> ModelMetadataResponse:
        loaded = self.loaded
        metadata = ModelMetadata(metadata=loaded.engine.metadata) if loaded else None
        return ModelMetadataResponse(value=metadata)

    def chat_template_override(self) -> ChatTemplateOverride:
        loaded = self.loaded
        if loaded is None or not loaded.uses_override or loaded.chat_template is None:
            return ChatTemplateOverride(value=None)
        return ChatTemplateOverride(value=ChatTemplateContent(content=loaded.chat_template.source))

    def _finished(self, request_id: str) -> None:
        del self._requests[request_id]
        self._status.update(slots_processing=len(self._requests))
        if not self._requests:
            self._idle.set()

    async def _serve(
        self,
        request_id: str,
        params: ContinueFromConversationHistoryParams | ContinueFromRawPromptParams,
        send: SendResponse,
    ) -> None:
        def respond(result: GeneratedTokenResult) -> None:
            send(request_id, GeneratedToken(value=result))

        loaded = self.loaded
        if loaded is None:
            respond(SamplerError(value=f"{self._agent_name}: no model is loaded"))
            return
        try:
            job = self._job(request_id, loaded, params)
        except _PromptRejectedError as rejected:
            respond(rejected.result)
            return
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[EngineEvent] = asyncio.Queue()

        def sink(event: EngineEvent) -> None:
            loop.call_soon_threadsafe(events.put_nowait, event)

        loaded.engine.submit(job, sink)
        generated = 0
        while True:
            event = await events.get()
            if isinstance(event, TokenSampled):
                generated += 1
                respond(ContentToken(value=event.piece))
            elif isinstance(event, JobFinished):
                usage = TokenUsage.zero().model_copy(
                    update={
                        "prompt_tokens": event.prompt_tokens,
                        "cached_prompt_tokens": event.cached_prompt_tokens,
                        "content_tokens": generated,
                    }
                )
                respond(Done(usage=usage))
                return
            elif isinstance(event, JobFailed):
                respond(_FAILURES[event.kind](event.message))
                return

    def _job(
        self,
        request_id: str,
        loaded: LoadedModel,
        params: ContinueFromConversationHistoryParams | ContinueFromRawPromptParams,
    ) -> GenerationJob:
        if loaded.parameters.enable_embeddings:
            raise _PromptRejectedError(TokenGenerationDisabled(value=EMBEDDINGS_ONLY))
        if isinstance(params, ContinueFromRawPromptParams):
            prompt = params.raw_prompt
        else:
            if params.grammar is not None and params.enable_thinking:
                raise _PromptRejectedError(
                    GrammarIncompatibleWithThinking(value=GRAMMAR_WITH_THINKING)
                )
            prompt = self._render(loaded, params)
        engine = loaded.engine
        return GenerationJob(
            job_id=request_id,
            prompt_tokens=engine.tokenize(prompt, add_bos=True, parse_special=True),
            max_tokens=params.max_tokens,
            sampling=sampling_settings(loaded.parameters),
            grammar=_gbnf(params.grammar),
        )

    def _render(self, loaded: LoadedModel, params: ContinueFromConversationHistoryParams) -> str:
        template = loaded.chat_template
        if template is None:
            raise _PromptRejectedError(
                ChatTemplateError(
                    value=f"{self._agent_name}: failed to render chat template: "
                    "the model has no chat template and no override is set"
                )
            )
        try:
            return template.render(
                messages=conversation_to_template_messages(params.conversation_history),
                add_generation_prompt=params.add_generation_prompt,
                enable_thinking=params.enable_thinking,
                tools=[tool.model_dump(mode="json", exclude_none=True) for tool in params.tools],
                bos_token=loaded.engine.bos_token,
                eos_token=loaded.engine.eos_token,
            )
        except ChatTemplateRenderError as error:
            raise _PromptRejectedError(
                ChatTemplateError(
                    value=f"{self._agent_name}: failed to render chat template: {error}"
                )
            ) from error


def _gbnf(grammar: GrammarConstraint | None) -> tuple[str, str] | None:
    if isinstance(grammar, GbnfGrammar):
        return (grammar.grammar, grammar.root)
    return None
