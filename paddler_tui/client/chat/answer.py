"""Reading one answer: its text handed on as it streams, then how it ended, to be stored."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from paddler_tui.client.chat.conversation_store import NewMessage, Outcome
from paddler_tui.client.chat.generation import (
    ContentDelta,
    Generation,
    GenerationDone,
    GenerationFailed,
    ReasoningDelta,
)
from paddler_tui.protocol.usage import TokenUsage

logger = logging.getLogger(__name__)

TextSink = Callable[[str], Awaitable[None]]


@dataclass(frozen=True)
class AnswerEnd:
    generated_by: str | None
    usage: TokenUsage | None
    tokens_per_second: float | None
    # Stopped by the user, with no Done and no failure before the stop.
    stopped: bool
    failure: GenerationFailed | None

    @property
    def outcome(self) -> Outcome:
        return "failed" if self.failure is not None else "stopped" if self.stopped else "complete"

    def message(self, content: str, reasoning: str) -> NewMessage:
        """The assistant message to store, with the text that was shown."""
        return NewMessage(
            "assistant",
            content,
            reasoning=reasoning,
            outcome=self.outcome,
            problem=self.failure.problem if self.failure is not None else None,
            advice=self.failure.advice if self.failure is not None else None,
            generated_by=self.generated_by,
            usage=self.usage,
            tokens_per_second=self.tokens_per_second,
        )


async def read_answer(
    generation: Generation, *, on_content: TextSink, on_reasoning: TextSink
) -> AnswerEnd:
    """Hand every piece of text to its sink as it arrives; how the answer ended.

    Never raises for what the balancer sends (or for a sink that fails on it): that becomes a
    failure, and the log has the traceback.
    """
    done: GenerationDone | None = None
    failed: GenerationFailed | None = None
    try:
        async for event in generation.events():
            if isinstance(event, ContentDelta):
                await on_content(event.text)
            elif isinstance(event, ReasoningDelta):
                await on_reasoning(event.text)
            elif isinstance(event, GenerationDone):
                done = event
            else:
                failed = event
    except Exception as error:
        logger.exception("the answer could not be shown")
        failed = GenerationFailed(
            f"Unexpected data from the balancer: {error}",
            "Retry; if it repeats, the log file has the details.",
            generation.generated_by,
        )
    return AnswerEnd(
        generated_by=done.generated_by if done is not None else generation.generated_by,
        usage=done.usage if done is not None else None,
        tokens_per_second=done.tokens_per_second if done is not None else None,
        stopped=failed is None and done is None and generation.stopped,
        failure=failed,
    )
