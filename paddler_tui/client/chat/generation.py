"""One chat answer over the inference socket, as plain events the chat screen renders.

The protocol has many ways to end a request (error envelopes with HTTP-like codes, terminal
token variants, a dropped socket); they all become one :class:`GenerationFailed` carrying what
went wrong and what the user can do about it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from paddler_tui.client.balancer_services import BalancerServices
from paddler_tui.client.errors import ClientError
from paddler_tui.client.inference_socket import RequestStream
from paddler_tui.protocol.envelope import ContinueFromConversationHistory, ErrorDetails
from paddler_tui.protocol.generated_token import GeneratedTokenResult, TokenGenerationDisabled
from paddler_tui.protocol.inference_socket import (
    InferenceServerMessage,
    ResponseEnvelope,
    Timeout,
)
from paddler_tui.protocol.requests import ContinueFromConversationHistoryParams
from paddler_tui.protocol.token_stream import (
    AgentFailure,
    Finished,
    RefusalReason,
    Refused,
    TextPiece,
    ToolCallText,
    read_message,
)
from paddler_tui.protocol.usage import TokenUsage


@dataclass(frozen=True)
class ContentDelta:
    text: str


@dataclass(frozen=True)
class ReasoningDelta:
    text: str


@dataclass(frozen=True)
class GenerationDone:
    usage: TokenUsage
    generated_by: str | None
    tokens_per_second: float | None


@dataclass(frozen=True)
class GenerationFailed:
    problem: str
    advice: str
    generated_by: str | None
    # Whether sending the same request again can succeed once the cause is gone.
    retryable: bool = True


GenerationEvent = ContentDelta | ReasoningDelta | GenerationDone | GenerationFailed

MONITOR_HINT = "the monitor screen shows the agents and their slots"
CLUSTER_HINT = "the cluster screen sets the model and its parameters"


def advice_for_error(code: int, description: str) -> str:
    """What to do about an error envelope from the balancer (texts as in Paddler)."""
    if code == 503 and "shutting down" in description:
        return "The balancer is shutting down. Start it again, then retry."
    if code == 503:
        return (
            "Every slot is busy and the buffer of waiting requests is full. Retry when "
            "requests finish, or add agents or slots (the balancer's --max-buffered-requests "
            f"sets the buffer; {MONITOR_HINT})."
        )
    if code == 504 and "waiting for next token" in description:
        return (
            "The agent sent no token within the balancer's --inference-item-timeout. A long "
            "conversation takes longer to process: start a new one, or raise the timeout."
        )
    if code == 504:
        return (
            "No slot became free within the balancer's --buffered-request-timeout. Check that "
            f"an agent is connected and has loaded a model ({MONITOR_HINT}), then retry."
        )
    if code == 502:
        return (
            "The agent answering this request disconnected. Retry: another agent takes it, "
            f"or this one once it reconnects ({MONITOR_HINT})."
        )
    return "The balancer rejected the request; retry, and check the balancer's log if it repeats."


DISABLED_ADVICE = (
    "The cluster is configured for embeddings, so it generates no text. Turn embeddings off "
    f"({CLUSTER_HINT}), then retry."
)


def failure_for_token(result: GeneratedTokenResult, generated_by: str | None) -> GenerationFailed:
    """A terminal token variant other than ``Done``, explained."""
    name = type(result).__name__
    detail = getattr(result, "value", None)
    problem = f"{name}: {detail}" if isinstance(detail, str) else name
    if isinstance(result, TokenGenerationDisabled):
        return GenerationFailed(problem, DISABLED_ADVICE, generated_by)
    return GenerationFailed(
        problem,
        f"The agent could not generate this answer. Check the model and its chat template "
        f"({CLUSTER_HINT}).",
        generated_by,
        retryable=False,
    )


class Generation:
    """One request; iterate :meth:`events` once, call :meth:`stop` to end it early.

    ``clock`` is read only at the first token and at ``Done``, so tokens/s is reproducible
    with a scripted clock.
    """

    def __init__(
        self,
        services: BalancerServices,
        params: ContinueFromConversationHistoryParams,
        *,
        clock: Callable[[], float],
    ) -> None:
        self._services = services
        self._params = params
        self._clock = clock
        self._stream: RequestStream | None = None
        self._stopping = asyncio.Event()
        self._first_token_at: float | None = None
        self.generated_by: str | None = None

    @property
    def stopped(self) -> bool:
        return self._stopping.is_set()

    async def events(self) -> AsyncIterator[GenerationEvent]:
        """The answer's events; they end after a terminal one, or as soon as it is stopped."""
        try:
            socket = await self._services.inference_socket()
            if self.stopped:
                return
            self._stream = await socket.request(ContinueFromConversationHistory(value=self._params))
            if self.stopped:
                await self._stream.stop()
                return
            messages = aiter(self._stream)
            while (message := await self._next(messages)) is not None:
                event = self._event(message)
                if event is not None:
                    yield event
        except ClientError as error:
            yield GenerationFailed(
                f"Lost the balancer at {self._services.inference_addr}: {error}",
                "The status bar shows when it answers again; then retry.",
                self.generated_by,
            )

    async def _next(
        self, messages: AsyncIterator[InferenceServerMessage]
    ) -> InferenceServerMessage | None:
        """The next message, or None once the stream ended or :meth:`stop` was called."""
        if self.stopped:
            return None
        step = asyncio.ensure_future(anext(messages))
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({step, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            if not step.done():
                step.cancel()
        if not step.done() or step.cancelled():
            return None
        try:
            return step.result()
        except StopAsyncIteration:
            return None

    def _event(self, message: InferenceServerMessage) -> GenerationEvent | None:
        if isinstance(message, ResponseEnvelope):
            self.generated_by = message.generated_by or self.generated_by
        event = read_message(message)
        # Tool-call text shows as content: the chat has no view of its own for it.
        if isinstance(event, TextPiece | ToolCallText):
            if self._first_token_at is None:
                self._first_token_at = self._clock()
            if isinstance(event, TextPiece) and event.reasoning:
                return ReasoningDelta(event.text)
            return ContentDelta(event.text)
        if isinstance(event, Finished):
            return GenerationDone(event.usage, self.generated_by, self._rate(event.usage))
        if isinstance(event, AgentFailure):
            return failure_for_token(event.result, self.generated_by) if event.ends else None
        if isinstance(event, Refused):
            return self._refused(event.reason)
        return None

    def _refused(self, reason: RefusalReason) -> GenerationFailed:
        if isinstance(reason, ErrorDetails):
            return GenerationFailed(
                f"{reason.code}: {reason.description}",
                advice_for_error(reason.code, reason.description),
                self.generated_by,
            )
        code = 504 if isinstance(reason, Timeout) else 503
        return GenerationFailed(
            type(reason).__name__, advice_for_error(code, ""), self.generated_by
        )

    def _rate(self, usage: TokenUsage) -> float | None:
        if self._first_token_at is None:
            return None
        elapsed = self._clock() - self._first_token_at
        # The first token starts the clock, so it is not part of the measured interval.
        tokens = usage.completion_tokens - 1
        return tokens / elapsed if elapsed > 0 and tokens > 0 else None

    async def stop(self) -> None:
        """End :meth:`events` now and send StopRespondingTo, so the balancer frees the slot."""
        self._stopping.set()
        if self._stream is not None:
            await self._stream.stop()
