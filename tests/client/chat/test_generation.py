"""How the chat explains a failed answer."""

from __future__ import annotations

from paddler_tui.client.chat.generation import advice_for_error, failure_for_token
from paddler_tui.protocol.generated_token import ChatTemplateError, TokenGenerationDisabled


def test_advice_for_each_balancer_error() -> None:
    assert "buffer" in advice_for_error(503, "Buffered requests overflow")
    assert "shutting down" in advice_for_error(503, "balancer is shutting down")
    assert "--buffered-request-timeout" in advice_for_error(
        504, "Waiting for available slot timed out"
    )
    assert "--inference-item-timeout" in advice_for_error(
        504, "Inference timed out after 30000ms waiting for next token. Increase …"
    )
    assert "disconnected" in advice_for_error(502, "Agent controller connection closed")
    disabled = failure_for_token(TokenGenerationDisabled(value="off"), "a1")
    assert disabled.retryable and "embeddings" in disabled.advice
    template = failure_for_token(ChatTemplateError(value="bad template"), None)
    assert template.problem == "ChatTemplateError: bad template"
    assert not template.retryable
