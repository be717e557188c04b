"""OpenAI error bodies, and what every Paddler failure becomes on the OpenAI service.

Paddler answers every failure with HTTP 500; here the status says what happened, so clients can
retry on 429 and 504: a full buffer is a rate limit, a buffer or item timeout is a timeout, and
the balancer's other error envelopes keep their own code.
"""

from __future__ import annotations

from typing import Any

from paddler_tui.protocol.envelope import ErrorDetails
from paddler_tui.protocol.generated_token import (
    ChatTemplateError,
    DetokenizationFailed,
    GeneratedTokenResult,
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
from paddler_tui.server.balancer.inference_requests import RequestRejectedError
from paddler_tui.server.balancer.request_body import BodyError
from paddler_tui.server.balancer.request_errors import OVERFLOW

SERVER_ERROR = "server_error"
INVALID_REQUEST = "invalid_request_error"
RATE_LIMIT = "rate_limit_error"
TIMEOUT = "timeout"

# Agent failures whose payload is the whole message.
_DESCRIBED = (
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
)


class OpenAIError(Exception):
    """A failure as the OpenAI service reports it: an HTTP status and an error body."""

    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        error_type: str = SERVER_ERROR,
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.error_type = error_type
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }


def invalid_request(message: str, *, param: str | None = None) -> OpenAIError:
    return OpenAIError(400, message, error_type=INVALID_REQUEST, param=param)


def from_body_error(error: BodyError) -> OpenAIError:
    """An unreadable body: 400 (or 413 past the size limit), as an invalid request."""
    return OpenAIError(error.status_code, error.message, error_type=INVALID_REQUEST)


def from_rejection(rejected: RequestRejectedError, *, disabled: str | None = None) -> OpenAIError:
    """A request refused before forwarding; ``disabled`` rewords the 501 for the route."""
    if rejected.status_code == 400:
        return invalid_request(rejected.message)
    if rejected.status_code == 501 and disabled is not None:
        return OpenAIError(501, disabled)
    return OpenAIError(rejected.status_code, rejected.message)


def from_error_envelope(error: ErrorDetails) -> OpenAIError:
    """The balancer's own failures (buffer, timeouts, lost agent, shutdown)."""
    if (error.code, error.description) == OVERFLOW:
        return OpenAIError(429, error.description, error_type=RATE_LIMIT)
    if error.code == 504:
        return OpenAIError(504, error.description, error_type=TIMEOUT)
    status = error.code if 400 <= error.code <= 599 else 500
    return OpenAIError(status, error.description)


def from_unsent_response(response: Timeout | TooManyBufferedRequests) -> OpenAIError:
    """Paddler's response variants for what now arrives as error envelopes (never sent)."""
    if isinstance(response, Timeout):
        return OpenAIError(504, "request timed out", error_type=TIMEOUT)
    return OpenAIError(429, "too many buffered requests", error_type=RATE_LIMIT)


def from_token_result(result: GeneratedTokenResult) -> OpenAIError | None:
    """The error an agent's token result reports, or ``None`` for tokens, calls and Done."""
    if isinstance(result, _DESCRIBED):
        return OpenAIError(500, result.value)
    if isinstance(result, ImageExceedsBatchSize):
        return OpenAIError(
            500,
            f"image required {result.image_tokens} tokens but agent n_batch is "
            f"{result.n_batch}; rerun with a larger n_batch",
        )
    if isinstance(result, ToolCallValidationFailed):
        return OpenAIError(500, result.value[0] if result.value else "tool call failed validation")
    if isinstance(result, UnrecognizedToolCallFormat):
        return OpenAIError(
            500,
            "model produced output the parser did not recognise as any registered tool-call "
            f"format; FFI error: {result.ffi_error_message}; raw text: {result.text}",
        )
    return None
