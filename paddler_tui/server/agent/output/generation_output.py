"""Turning one request's classified tokens into ``GeneratedTokenResult`` messages and usage."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from paddler_tui.protocol.generated_token import (
    TEXT_VARIANTS,
    Done,
    GeneratedTokenResult,
    ParsedToolCall,
    TokenKind,
    ToolCallParsed,
    ToolCallValidationFailed,
    UnrecognizedToolCallFormat,
)
from paddler_tui.protocol.usage import TokenUsage
from paddler_tui.server.agent.output.token_classifier import Text
from paddler_tui.server.agent.output.tool_call_parser import (
    UnrecognizedToolCallError,
    parse_tool_call_section,
)

if TYPE_CHECKING:
    from collections.abc import Iterable

    from paddler_tui.server.agent.output.token_classifier import Classified, Output
    from paddler_tui.server.agent.output.tool_call_validation import ToolCallValidator


class GenerationOutput:
    """Per request; ``validator`` set means tool calls are parsed (``parse_tool_calls``)."""

    def __init__(self, validator: ToolCallValidator | None) -> None:
        self._validator = validator
        self._counts: Counter[TokenKind] = Counter()
        self._calls = 0

    def token(self, classified: Classified) -> list[GeneratedTokenResult]:
        self._counts[classified.kind] += 1
        return self._results(classified.outputs)

    def finish(
        self, outputs: Iterable[Output], *, prompt_tokens: int, cached_prompt_tokens: int
    ) -> list[GeneratedTokenResult]:
        """The last outputs of the classifier, then Done with the usage."""
        results = self._results(outputs)
        counts = self._counts
        usage = TokenUsage.zero().model_copy(
            update={
                "prompt_tokens": prompt_tokens,
                "cached_prompt_tokens": cached_prompt_tokens,
                "content_tokens": counts["content"],
                "reasoning_tokens": counts["reasoning"],
                "tool_call_tokens": counts["tool_call"],
                "undeterminable_tokens": counts["undeterminable"],
            }
        )
        results.append(Done(usage=usage))
        return results

    def _results(self, outputs: Iterable[Output]) -> list[GeneratedTokenResult]:
        results: list[GeneratedTokenResult] = []
        for output in outputs:
            if isinstance(output, Text):
                results.append(TEXT_VARIANTS[output.kind](value=output.text))
            elif self._validator is not None:
                results.append(self._tool_calls(output.text, self._validator))
        return results

    def _tool_calls(self, section: str, validator: ToolCallValidator) -> GeneratedTokenResult:
        try:
            calls = parse_tool_call_section(section)
        except UnrecognizedToolCallError as error:
            return UnrecognizedToolCallFormat(text=section, ffi_error_message=str(error))
        errors = validator.errors(calls)
        if errors:
            return ToolCallValidationFailed(value=errors)
        parsed: list[ParsedToolCall] = []
        for call in calls:
            parsed.append(
                ParsedToolCall(id=f"call_{self._calls}", name=call.name, arguments=call.arguments)
            )
            self._calls += 1
        return ToolCallParsed(value=parsed)
