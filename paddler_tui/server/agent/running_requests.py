"""Requests on the agent: admission, prompt building, and streaming engine output as responses.

The engine runs on the agent's one compute thread and hands over each scheduler step's events
in one ``call_soon_threadsafe``; each request's sink then turns its events into responses on the
event loop. Each generated token arrives classified (content, reasoning, tool call): the job
carries its classifier and the engine alone feeds it, as it counts each token, so that it stops
after exactly ``max_tokens`` counted tokens. The compute thread only hands events over.
The count of requests in here is the agent's ``slots_processing``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from paddler_tui.protocol.agent_socket import (
    ChatTemplateOverride,
    FromAgentResponse,
    ModelMetadataResponse,
    PromptCacheRam,
)
from paddler_tui.protocol.agent_status import ModelMetadata
from paddler_tui.protocol.desired_state import ChatTemplate as ChatTemplateContent
from paddler_tui.protocol.embedding import EmbeddingDone, EmbeddingError, EmbeddingResult
from paddler_tui.protocol.envelope import EmbeddingResponse, GeneratedToken
from paddler_tui.protocol.generated_token import (
    ChatTemplateError,
    GeneratedTokenResult,
    GrammarIncompatibleWithThinking,
    GrammarInitializationFailed,
    GrammarSyntaxError,
    SamplerError,
    TokenGenerationDisabled,
    ToolSchemaInvalid,
)
from paddler_tui.protocol.grammar import GbnfGrammar, GrammarConstraint
from paddler_tui.protocol.inference_parameters import InferenceParameters
from paddler_tui.protocol.requests import (
    ContinueFromConversationHistoryParams,
    ContinueFromRawPromptParams,
    GenerateEmbeddingBatchParams,
    SamplingOverrides,
)
from paddler_tui.server.agent.chat_template import (
    ChatTemplate,
    ChatTemplateRenderError,
    conversation_to_template_messages,
)
from paddler_tui.server.agent.embedding_requests import serve_embeddings
from paddler_tui.server.agent.engine.thread import ComputeThread
from paddler_tui.server.agent.engine.types import (
    UNLIMITED_PROMPT_CACHE,
    Delivery,
    EngineEvent,
    EngineSettings,
    GenerationJob,
    GrammarConversionError,
    JobFailed,
    JobFinished,
    SamplingSettings,
    TokenSampled,
    deliver_in_place,
)
from paddler_tui.server.agent.output.generation_output import GenerationOutput
from paddler_tui.server.agent.output.token_classifier import TokenClassifier
from paddler_tui.server.agent.output.token_markers import (
    Markers,
    detect_markers,
    open_reasoning_at_end,
)
from paddler_tui.server.agent.output.tool_call_validation import (
    ToolCallValidator,
    ToolSchemaInvalidError,
)
from paddler_tui.server.agent.status import AgentStatus

if TYPE_CHECKING:
    from paddler_tui.server.agent.engine.engine import Engine

logger = logging.getLogger(__name__)

# Where a request's responses go (the connection's writer); nothing here knows the connection.
SendResponse = Callable[[str, FromAgentResponse], None]

EMBEDDINGS_ONLY = "Token generation is disabled: this agent is running in embeddings-only mode"
GRAMMAR_WITH_THINKING = "Grammar constraints are incompatible with thinking mode"


def _failure(event: JobFailed) -> GeneratedTokenResult:
    if event.kind == "grammar_init":
        return GrammarInitializationFailed(value=event.message)
    return SamplerError(value=event.message)


@dataclass
class LoadedModel:
    engine: Engine
    engine_settings: EngineSettings
    builtin_chat_template: str | None
    parameters: InferenceParameters
    chat_template: ChatTemplate | None = None
    uses_override: bool = False
    markers: Markers = field(default_factory=Markers)


class _PromptRejectedError(Exception):
    def __init__(self, result: GeneratedTokenResult) -> None:
        super().__init__(str(result))
        self.result = result


@dataclass(frozen=True)
class _Prepared:
    job: GenerationJob
    output: GenerationOutput


def sampling_settings(
    parameters: InferenceParameters, overrides: SamplingOverrides | None = None
) -> SamplingSettings:
    settings = SamplingSettings(
        temperature=parameters.temperature,
        top_k=parameters.top_k,
        top_p=parameters.top_p,
        min_p=parameters.min_p,
        penalty_last_n=parameters.penalty_last_n,
        penalty_repeat=parameters.penalty_repeat,
        penalty_frequency=parameters.penalty_frequency,
        penalty_presence=parameters.penalty_presence,
    )
    if overrides is None:
        return settings
    # The override fields (seed, temperature, top_p) are named as in SamplingSettings.
    return replace(settings, **overrides.model_dump(exclude_none=True))


class RunningRequests:
    """The loaded model and every request in flight on it."""

    def __init__(self, *, status: AgentStatus, agent_name: str | None) -> None:
        self._status = status
        self._agent_name = agent_name or "agent"
        self.loaded: LoadedModel | None = None
        self._requests: dict[str, asyncio.Task[None]] = {}
        self._stopped: set[str] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        # Every llama.cpp computation of this process runs here, engine after engine.
        self.compute = ComputeThread()

    # Model lifecycle (driven by the state applier).

    async def load(self, settings: EngineSettings) -> None:
        from paddler_tui.server.agent.engine.engine import Engine

        loop = asyncio.get_running_loop()

        def deliver(delivery: Delivery) -> None:  # the compute thread, once per step
            loop.call_soon_threadsafe(deliver_in_place, delivery)

        engine = await asyncio.wrap_future(
            Engine.start_loading(settings, thread=self.compute, deliver=deliver)
        )
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
        loaded = self.loaded
        assert loaded is not None
        loaded.parameters = parameters
        loaded.chat_template = chat_template
        loaded.uses_override = uses_override
        source = chat_template.source if chat_template is not None else None
        loaded.markers = detect_markers(source, loaded.engine.is_single_token)

    async def drain_and_unload(self) -> None:
        await self._idle.wait()
        loaded, self.loaded = self.loaded, None
        if loaded is not None:
            await asyncio.to_thread(loaded.engine.close)

    async def close(self) -> None:
        """Stop everything now (shutdown): requests end, the engine and its thread are freed."""
        self.stop_all()
        loaded, self.loaded = self.loaded, None
        if loaded is not None:
            await asyncio.to_thread(loaded.engine.close)
        if self._requests:
            await asyncio.wait(list(self._requests.values()), timeout=2)
        await asyncio.to_thread(self.compute.stop)

    # Requests (driven by the balancer connection).

    def start(
        self,
        request_id: str,
        params: ContinueFromConversationHistoryParams
        | ContinueFromRawPromptParams
        | GenerateEmbeddingBatchParams,
        send: SendResponse,
    ) -> None:
        if request_id in self._requests:
            logger.warning("ignoring a second request with the in-flight id %s", request_id)
            return
        serve = (
            self._serve_embeddings(request_id, params, send)
            if isinstance(params, GenerateEmbeddingBatchParams)
            else self._serve(request_id, params, send)
        )
        task = asyncio.create_task(serve, name=request_id)
        self._requests[request_id] = task
        self._idle.clear()
        self._status.update(slots_processing=len(self._requests))
        task.add_done_callback(lambda _: self._finished(request_id))

    def stop(self, request_id: str) -> None:
        loaded = self.loaded
        if request_id in self._requests and loaded is not None:
            # The request may not have reached the engine yet (a stop read in the same batch
            # of frames as its request); it checks this set right before submitting.
            self._stopped.add(request_id)
            loaded.engine.stop(request_id)

    def stop_all(self) -> None:
        for request_id in list(self._requests):
            self.stop(request_id)

    def model_metadata(self) -> ModelMetadataResponse:
        loaded = self.loaded
        metadata = ModelMetadata(metadata=loaded.engine.metadata) if loaded else None
        return ModelMetadataResponse(value=metadata)

    def prompt_cache_ram(self) -> PromptCacheRam | None:
        """What the loaded engine's prompt cache in host memory keeps; None with no model."""
        loaded = self.loaded
        if loaded is None:
            return None
        usage = loaded.engine.prompt_cache_usage
        budget = None if usage.budget == UNLIMITED_PROMPT_CACHE else usage.budget
        return PromptCacheRam(states=usage.states, bytes=usage.size, budget_bytes=budget)

    def chat_template_override(self) -> ChatTemplateOverride:
        loaded = self.loaded
        if loaded is None or not loaded.uses_override or loaded.chat_template is None:
            return ChatTemplateOverride(value=None)
        return ChatTemplateOverride(value=ChatTemplateContent(content=loaded.chat_template.source))

    def _finished(self, request_id: str) -> None:
        del self._requests[request_id]
        self._stopped.discard(request_id)
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
            prepared = await self._prepare(request_id, loaded, params)
        except _PromptRejectedError as rejected:
            respond(rejected.result)
            return
        job, output = prepared.job, prepared.output
        if request_id in self._stopped:
            # Stopped before it started: Done, as for any stop, with nothing generated.
            prompt_tokens = len(job.prompt_tokens)
            for result in output.finish([], prompt_tokens=prompt_tokens, cached_prompt_tokens=0):
                respond(result)
            return
        ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def sink(event: EngineEvent) -> None:  # on the event loop, where `load` delivers
            if isinstance(event, TokenSampled):
                assert event.classified is not None, "the job has a classifier"
                results = output.token(event.classified)
            elif isinstance(event, JobFinished):
                results = output.finish(
                    event.outputs,
                    prompt_tokens=event.prompt_tokens,
                    cached_prompt_tokens=event.cached_prompt_tokens,
                )
            else:
                assert isinstance(event, JobFailed), event
                results = [_failure(event)]
            for result in results:
                respond(result)
            if not isinstance(event, TokenSampled):
                ended.set_result(None)

        loaded.engine.submit(job, sink)
        await ended

    async def _serve_embeddings(
        self, request_id: str, params: GenerateEmbeddingBatchParams, send: SendResponse
    ) -> None:
        def respond(result: EmbeddingResult) -> None:
            send(request_id, EmbeddingResponse(value=result))

        loaded = self.loaded
        if loaded is None:
            respond(EmbeddingError(value=f"{self._agent_name}: no model is loaded"))
            return
        if request_id in self._stopped:
            respond(EmbeddingDone())
            return
        pooling_type = loaded.parameters.pooling_type
        await serve_embeddings(loaded.engine, request_id, params, pooling_type, respond)

    async def _prepare(
        self,
        request_id: str,
        loaded: LoadedModel,
        params: ContinueFromConversationHistoryParams | ContinueFromRawPromptParams,
    ) -> _Prepared:
        if loaded.parameters.enable_embeddings:
            raise _PromptRejectedError(TokenGenerationDisabled(value=EMBEDDINGS_ONLY))
        validator = None
        if isinstance(params, ContinueFromRawPromptParams):
            prompt = params.raw_prompt
            # A raw prompt has no thinking switch; what the model reasons is shown.
            show_reasoning, tools = True, False
        else:
            if params.grammar is not None and params.enable_thinking:
                raise _PromptRejectedError(
                    GrammarIncompatibleWithThinking(value=GRAMMAR_WITH_THINKING)
                )
            if params.parse_tool_calls and params.tools:
                validator = _validator(params)
            prompt = self._render(loaded, params)
            show_reasoning, tools = params.enable_thinking, bool(params.tools)
        engine = loaded.engine
        markers = loaded.markers
        job = GenerationJob(
            job_id=request_id,
            prompt_tokens=engine.tokenize(prompt, add_bos=True, parse_special=True),
            max_tokens=params.max_tokens,
            sampling=sampling_settings(
                loaded.parameters,
                params.sampling
                if isinstance(params, ContinueFromConversationHistoryParams)
                else None,
            ),
            grammar=await _gbnf(engine, params.grammar),
            classifier=TokenClassifier(
                markers,
                show_reasoning=show_reasoning,
                start_in=open_reasoning_at_end(prompt, markers),
                bare_json_tool_calls=tools,
            ),
        )
        return _Prepared(job, GenerationOutput(validator))

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


def _validator(params: ContinueFromConversationHistoryParams) -> ToolCallValidator:
    try:
        return ToolCallValidator(params.tools)
    except ToolSchemaInvalidError as error:
        raise _PromptRejectedError(ToolSchemaInvalid(value=str(error))) from error


async def _gbnf(engine: Engine, grammar: GrammarConstraint | None) -> tuple[str, str] | None:
    """The GBNF and root rule of a grammar constraint; JSON Schemas are converted (§9.5)."""
    if grammar is None:
        return None
    if isinstance(grammar, GbnfGrammar):
        return (grammar.grammar, grammar.root)
    try:
        gbnf = await asyncio.to_thread(engine.json_schema_grammar, grammar.json_schema)
    except GrammarConversionError as error:
        raise _PromptRejectedError(
            GrammarSyntaxError(value=f"Failed to create grammar sampler: {error}")
        ) from error
    return (gbnf, "root")
