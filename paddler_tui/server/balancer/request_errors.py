"""How a forwarded request fails: Paddler's status codes and exact texts, as error envelopes."""

from __future__ import annotations

from paddler_tui.protocol.envelope import ErrorDetails, ErrorEnvelope

RequestError = tuple[int, str]

OVERFLOW: RequestError = (503, "Buffered requests overflow")
BUFFER_TIMEOUT: RequestError = (504, "Waiting for available slot timed out")
AGENT_GONE: RequestError = (502, "Agent controller connection closed")
SHUTTING_DOWN: RequestError = (503, "balancer is shutting down")
SEND_FAILED: RequestError = (500, "Failed to generate response")


def item_timeout_error(timeout_ms: int) -> RequestError:
    return (
        504,
        f"Inference timed out after {timeout_ms}ms waiting for next token. "
        "Increase --inference-item-timeout if the prompt requires longer processing.",
    )


def error_envelope(request_id: str, error: RequestError) -> ErrorEnvelope:
    code, description = error
    return ErrorEnvelope(
        request_id=request_id, error=ErrorDetails(code=code, description=description)
    )
