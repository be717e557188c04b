"""Every Paddler failure's OpenAI status, error type and message (no sockets)."""

from __future__ import annotations

import pytest

from paddler_tui.protocol.envelope import ErrorDetails, ErrorEnvelope
from paddler_tui.protocol.generated_token import (
    ChatTemplateError,
    DetokenizationFailed,
    GrammarIncompatibleWithThinking,
    GrammarInitializationFailed,
    GrammarRejectedModelOutput,
    GrammarSyntaxError,
    ImageDecodingFailed,
    ImageExceedsBatchSize,
    MultimodalNotSupported,
    SamplerError,
    TokenGenerationDisabled,
    ToolCallParseFailed,
    ToolCallValidationFailed,
    ToolSchemaInvalid,
    UnrecognizedToolCallFormat,
)
from paddler_tui.protocol.inference_socket import Timeout, TooManyBufferedRequests
from paddler_tui.server.balancer.inference_requests import TOKENS_DISABLED, RequestRejectedError
from paddler_tui.server.balancer.openai.chat import CHAT_DISABLED
from paddler_tui.server.balancer.openai.errors import (
    OpenAIError,
    from_body_error,
    from_error_envelope,
    from_rejection,
    from_token_result,
    from_unsent_response,
)
from paddler_tui.server.balancer.openai.generation import generation_event
from paddler_tui.server.balancer.request_body import BodyError
from paddler_tui.server.balancer.request_errors import (
    AGENT_GONE,
    BUFFER_TIMEOUT,
    OVERFLOW,
    SEND_FAILED,
    SHUTTING_DOWN,
    item_timeout_error,
)


def test_body_has_openai_shape() -> None:
    error = OpenAIError(500, "boom")
    assert error.body() == {
        "error": {"message": "boom", "type": "server_error", "param": None, "code": None}
    }


@pytest.mark.parametrize(
    ("error", "status", "error_type"),
    [
        (OVERFLOW, 429, "rate_limit_error"),
        (BUFFER_TIMEOUT, 504, "timeout"),
        (item_timeout_error(500), 504, "timeout"),
        (AGENT_GONE, 502, "server_error"),
        (SHUTTING_DOWN, 503, "server_error"),
        (SEND_FAILED, 500, "server_error"),
        ((1, "odd code"), 500, "server_error"),
    ],
)
def test_balancer_error_envelopes(error: tuple[int, str], status: int, error_type: str) -> None:
    code, description = error
    mapped = from_error_envelope(ErrorDetails(code=code, description=description))
    assert (mapped.status_code, mapped.error_type, mapped.message) == (
        status,
        error_type,
        description,
    )


def test_error_envelope_reaches_the_client_through_the_stream_reading() -> None:
    envelope = ErrorEnvelope(request_id="r", error=ErrorDetails(code=503, description=OVERFLOW[1]))
    event = generation_event(envelope)
    assert isinstance(event, OpenAIError)
    assert event.status_code == 429


def test_unsent_paddler_variants() -> None:
    assert from_unsent_response(Timeout()).error_type == "timeout"
    assert from_unsent_response(TooManyBufferedRequests()).status_code == 429


@pytest.mark.parametrize(
    "variant",
    [
        ChatTemplateError,
        DetokenizationFailed,
        GrammarIncompatibleWithThinking,
        GrammarInitializationFailed,
        GrammarRejectedModelOutput,
        GrammarSyntaxError,
        ImageDecodingFailed,
        MultimodalNotSupported,
        SamplerError,
        TokenGenerationDisabled,
        ToolCallParseFailed,
        ToolSchemaInvalid,
    ],
)
def test_agent_failures_are_server_errors_with_their_text(variant: type) -> None:
    mapped = from_token_result(variant(value="what went wrong"))
    assert mapped is not None
    assert (mapped.status_code, mapped.error_type, mapped.message) == (
        500,
        "server_error",
        "what went wrong",
    )


def test_structured_agent_failures() -> None:
    image = from_token_result(ImageExceedsBatchSize(image_tokens=900, n_batch=512))
    assert image is not None
    assert image.message == (
        "image required 900 tokens but agent n_batch is 512; rerun with a larger n_batch"
    )
    validation = from_token_result(ToolCallValidationFailed(value=["first", "second"]))
    assert validation is not None and validation.message == "first"
    empty = from_token_result(ToolCallValidationFailed(value=[]))
    assert empty is not None and "validation" in empty.message
    unrecognized = from_token_result(UnrecognizedToolCallFormat(text="<x>", ffi_error_message="e"))
    assert unrecognized is not None
    assert unrecognized.message.endswith("; FFI error: e; raw text: <x>")


def test_rejections() -> None:
    disabled = from_rejection(RequestRejectedError(501, TOKENS_DISABLED), disabled=CHAT_DISABLED)
    assert (disabled.status_code, disabled.message) == (501, CHAT_DISABLED)
    invalid = from_rejection(RequestRejectedError(400, "Invalid request parameters: x"))
    assert (invalid.status_code, invalid.error_type) == (400, "invalid_request_error")
    unavailable = from_rejection(RequestRejectedError(503, "No agents are currently connected"))
    assert (unavailable.status_code, unavailable.error_type) == (503, "server_error")


def test_unreadable_bodies_are_invalid_requests() -> None:
    too_large = from_body_error(BodyError(413, "Request body is larger than the limit"))
    assert (too_large.status_code, too_large.error_type) == (413, "invalid_request_error")


def test_a_token_limit_beyond_i32_is_a_400_not_a_500() -> None:
    """Agents take Paddler's i32 max_tokens; a larger limit must fail validation up front."""
    from pydantic import ValidationError

    from paddler_tui.server.balancer.openai.models import ChatCompletionRequest, ResponsesRequest

    for limit in (2**31, 10**12):
        with pytest.raises(ValidationError, match="less than or equal"):
            ChatCompletionRequest.model_validate(
                {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": limit}
            )
        with pytest.raises(ValidationError, match="less than or equal"):
            ResponsesRequest.model_validate(
                {"model": "m", "input": "hi", "max_output_tokens": limit}
            )
