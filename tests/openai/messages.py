"""Balancer messages for the pure mapping tests, as the forwarder yields them."""

from __future__ import annotations

from paddler_tui.protocol.embedding import EmbeddingResult
from paddler_tui.protocol.envelope import EmbeddingResponse, GeneratedToken
from paddler_tui.protocol.generated_token import Done, GeneratedTokenResult
from paddler_tui.protocol.inference_socket import ResponseEnvelope
from paddler_tui.protocol.token_stream import Finished
from paddler_tui.protocol.usage import TokenUsage


def token(result: GeneratedTokenResult) -> ResponseEnvelope:
    return ResponseEnvelope(
        generated_by="agent-1", request_id="req", response=GeneratedToken(value=result)
    )


def embedding(result: EmbeddingResult) -> ResponseEnvelope:
    return ResponseEnvelope(
        generated_by="agent-1", request_id="req", response=EmbeddingResponse(value=result)
    )


def usage(prompt: int = 7, content: int = 5, reasoning: int = 0, tool_call: int = 0) -> TokenUsage:
    return TokenUsage.zero().model_copy(
        update={
            "prompt_tokens": prompt,
            "content_tokens": content,
            "reasoning_tokens": reasoning,
            "tool_call_tokens": tool_call,
        }
    )


def done(**counts: int) -> ResponseEnvelope:
    return token(Done(usage=usage(**counts)))


def finished(**counts: int) -> Finished:
    return Finished(usage(**counts))
