"""Ids, numbers and token results helpers."""

from __future__ import annotations

import re

import pytest

from paddler_tui.protocol import generated_token as gt
from paddler_tui.protocol.agent_socket import (
    ExtraBuffers,
    FromAgentNotificationEnvelope,
    PromptCacheRam,
    UpdateAgentHost,
    decode_agent_to_balancer_message,
    encode_agent_to_balancer_message,
)
from paddler_tui.protocol.ids import new_id
from paddler_tui.protocol.numbers import round_f32
from paddler_tui.protocol.usage import TokenUsage


def test_new_id_is_a_nanoid() -> None:
    ids = {new_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{21}", value) for value in ids)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.05, 0.05),
        (1.1, 1.1),
        (0.0, 0.0),
        (-1.0, -1.0),
        (0.1 + 0.2, 0.3),
        (1e-45, 1e-45),
        # The largest f32: its 4-digit rounding 3.403e38 would overflow, so more digits are kept.
        (3.4028234663852886e38, 3.4028235e38),
        (-3.4028234663852886e38, -3.4028235e38),
    ],
)
def test_round_f32(value: float, expected: float) -> None:
    assert round_f32(value) == expected


@pytest.mark.parametrize("value", [float("inf"), float("nan"), 1e39])
def test_round_f32_rejects_non_f32(value: float) -> None:
    with pytest.raises(ValueError, match="f32"):
        round_f32(value)


def test_terminal_generated_token_results() -> None:
    usage = TokenUsage.zero()
    terminal: list[gt.GeneratedTokenResult] = [
        gt.Done(usage=usage),
        gt.ImageExceedsBatchSize(image_tokens=3, n_batch=2),
        gt.ChatTemplateError(value="x"),
        gt.DetokenizationFailed(value="x"),
        gt.GrammarIncompatibleWithThinking(value="x"),
        gt.GrammarInitializationFailed(value="x"),
        gt.GrammarRejectedModelOutput(value="x"),
        gt.GrammarSyntaxError(value="x"),
        gt.ImageDecodingFailed(value="x"),
        gt.MultimodalNotSupported(value="x"),
        gt.SamplerError(value="x"),
        gt.TokenGenerationDisabled(value="x"),
        gt.ToolSchemaInvalid(value="x"),
    ]
    streaming: list[gt.GeneratedTokenResult] = [
        gt.ContentToken(value="x"),
        gt.ReasoningToken(value="x"),
        gt.ToolCallToken(value="x"),
        gt.UndeterminableToken(value="x"),
        gt.ToolCallParsed(value=[]),
        gt.ToolCallParseFailed(value="x"),
        gt.ToolCallValidationFailed(value=["x"]),
        gt.UnrecognizedToolCallFormat(text="x", ffi_error_message="y"),
    ]
    assert all(gt.is_terminal(result) for result in terminal)
    assert not any(gt.is_terminal(result) for result in streaming)
    assert [gt.token_text(result) for result in streaming[:5]] == ["x", "x", "x", "x", None]


def test_usage_derived_counts() -> None:
    usage = TokenUsage.zero().model_copy(
        update={
            "prompt_tokens": 10,
            "input_image_tokens": 100,
            "content_tokens": 1,
            "reasoning_tokens": 2,
            "tool_call_tokens": 3,
            "undeterminable_tokens": 4,
        }
    )
    assert usage.completion_tokens == 10
    # Image tokens are counted apart from the prompt and do not enter the total.
    assert usage.total_tokens == 20


def test_a_host_report_carries_the_prompt_cache_in_ram_and_older_reports_still_parse() -> None:
    host = UpdateAgentHost(
        extra_buffers=ExtraBuffers(enabled=True, reason="auto"),
        prompt_cache_ram=PromptCacheRam(states=2, bytes=4096, budget_bytes=None),
    )
    message = FromAgentNotificationEnvelope(value=host)
    encoded = encode_agent_to_balancer_message(message)
    assert b'"prompt_cache_ram":{"states":2,"bytes":4096,"budget_bytes":null}' in encoded
    assert decode_agent_to_balancer_message(encoded) == message
    # From an agent older than the field: no cache reported.
    older = b'{"Notification":{"UpdateAgentHost":{"extra_buffers":{"enabled":false,"reason":"x"}}}}'
    decoded = decode_agent_to_balancer_message(older)
    assert isinstance(decoded, FromAgentNotificationEnvelope)
    assert isinstance(decoded.value, UpdateAgentHost)
    assert decoded.value.prompt_cache_ram is None
