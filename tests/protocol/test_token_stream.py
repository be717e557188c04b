"""Reading a generation's stream: every kind of balancer message, and what readers act on."""

from __future__ import annotations

import pytest

from paddler_tui.protocol.embedding import EmbeddingDone
from paddler_tui.protocol.envelope import (
    EmbeddingResponse,
    ErrorDetails,
    ErrorEnvelope,
    GeneratedToken,
)
from paddler_tui.protocol.generated_token import (
    TEXT_VARIANTS,
    ContentToken,
    Done,
    GeneratedTokenResult,
    ReasoningToken,
    SamplerError,
    ToolCallParsed,
    ToolCallToken,
    ToolCallValidationFailed,
    UndeterminableToken,
)
from paddler_tui.protocol.inference_socket import (
    InferenceResponse,
    InferenceServerMessage,
    ResponseEnvelope,
    ServerNotificationEnvelope,
    Timeout,
    TokenGenerationDisabledNotification,
    TooManyBufferedRequests,
)
from paddler_tui.protocol.token_stream import (
    AgentFailure,
    Finished,
    Refused,
    StreamEvent,
    TextPiece,
    ToolCalls,
    ToolCallText,
    read_message,
)
from paddler_tui.protocol.usage import TokenUsage


def response(value: InferenceResponse) -> ResponseEnvelope:
    return ResponseEnvelope(generated_by="agent-1", request_id="r", response=value)


def token(result: GeneratedTokenResult) -> ResponseEnvelope:
    return response(GeneratedToken(value=result))


USAGE = TokenUsage.zero().model_copy(update={"content_tokens": 2})
OVERFLOW = ErrorDetails(code=503, description="Buffered requests overflow")


@pytest.mark.parametrize(
    ("message", "event"),
    [
        (token(ContentToken(value="a")), TextPiece("a", reasoning=False)),
        (token(UndeterminableToken(value="b")), TextPiece("b", reasoning=False)),
        (token(ReasoningToken(value="c")), TextPiece("c", reasoning=True)),
        (token(ToolCallToken(value="<tool_call>")), ToolCallText("<tool_call>")),
        (token(ToolCallParsed(value=[])), ToolCalls([])),
        (token(Done(usage=USAGE)), Finished(USAGE)),
        (
            token(ToolCallValidationFailed(value=["bad"])),
            AgentFailure(ToolCallValidationFailed(value=["bad"]), ends=False),
        ),
        (token(SamplerError(value="x")), AgentFailure(SamplerError(value="x"), ends=True)),
        (ErrorEnvelope(request_id="r", error=OVERFLOW), Refused(OVERFLOW)),
        (response(Timeout()), Refused(Timeout())),
        (response(TooManyBufferedRequests()), Refused(TooManyBufferedRequests())),
        (ServerNotificationEnvelope(value=TokenGenerationDisabledNotification()), None),
        (response(EmbeddingResponse(value=EmbeddingDone())), None),
    ],
)
def test_each_message_reads_as_one_event(
    message: InferenceServerMessage, event: StreamEvent | None
) -> None:
    assert read_message(message) == event


def test_every_text_kind_the_agent_writes_reads_back_as_text() -> None:
    for kind, variant in TEXT_VARIANTS.items():
        event = read_message(token(variant(value="t")))
        expected = ToolCallText("t") if kind == "tool_call" else TextPiece("t", kind == "reasoning")
        assert event == expected
