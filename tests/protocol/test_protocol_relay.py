"""Relayed tokens: an agent's token frame spliced into the client's frame without models.

The fast path must be invisible: the client's bytes equal the typed path's encoding, the typed
view equals what validation builds, and every frame it does not take (other responses, anything
malformed) decodes, or fails, exactly as :func:`decode_agent_to_balancer_message` does.
"""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from paddler_tui.protocol import generated_token as gt
from paddler_tui.protocol.agent_socket import (
    FromAgentResponseEnvelope,
    RelayedToken,
    decode_agent_frame,
    decode_agent_to_balancer_message,
    encode_agent_to_balancer_message,
)
from paddler_tui.protocol.envelope import GeneratedToken
from paddler_tui.protocol.errors import ProtocolError
from paddler_tui.protocol.inference_socket import (
    RelayedResponse,
    ResponseEnvelope,
    ResponseHead,
    encode_inference_server_message,
    typed_message,
)
from paddler_tui.protocol.usage import TokenUsage

# orjson (like serde_json) refuses lone surrogates, so they are not JSON strings.
text = st.text(st.characters(exclude_categories=["Cs"]), max_size=20)

TEXTS = ["Hi", "", "héllo ✓ 🦀", 'quote " and \\ backslash', "tab\tnew\nline\x00\x1f\x7f", "</s>"]


def agent_frame(response: object, **envelope: object) -> bytes:
    """An agent's response frame; ``envelope`` adds or replaces the envelope's fields."""
    body = {"generated_by": None, "request_id": "r-1", **envelope, "response": response}
    return orjson.dumps({"Response": body})


def token_frame(tag: str, value: object) -> bytes:
    return agent_frame({"GeneratedToken": {tag: value}})


def relayed(frame: bytes | str) -> RelayedToken:
    token = decode_agent_frame(frame)
    assert isinstance(token, RelayedToken)
    return token


def assert_spliced_like_typed(
    frame: bytes | str, generated_by: str | None, request_id: str
) -> None:
    typed = decode_agent_to_balancer_message(frame)
    assert isinstance(typed, FromAgentResponseEnvelope)
    assert isinstance(typed.response, GeneratedToken)
    token = relayed(frame)
    assert (token.request_id, token.response()) == (typed.request_id, typed.response)
    spliced = RelayedResponse(ResponseHead(generated_by, request_id), token)
    envelope = ResponseEnvelope(
        generated_by=generated_by, request_id=request_id, response=typed.response
    )
    assert encode_inference_server_message(spliced) == encode_inference_server_message(envelope)
    assert typed_message(spliced) == envelope


@pytest.mark.parametrize("variant", gt.TOKEN_VARIANTS, ids=lambda v: v.TAG)
@pytest.mark.parametrize("value", TEXTS)
@pytest.mark.parametrize("generated_by", [None, "agent-1", 'odd "name" ✓'])
def test_a_spliced_token_frame_equals_the_typed_encoding(
    variant: type[gt.TokenVariant], value: str, generated_by: str | None
) -> None:
    assert_spliced_like_typed(token_frame(variant.TAG, value), generated_by, 'req\\"-1 ✓')


@given(value=text, generated_by=st.none() | text, request_id=text)
def test_any_token_text_splices_like_the_typed_encoding(
    value: str, generated_by: str | None, request_id: str
) -> None:
    assert_spliced_like_typed(token_frame("ContentToken", value), generated_by, request_id)


@pytest.mark.parametrize(
    "frame",
    [
        # Escapes and spacing the typed path would write differently are normalised.
        '{"Response": {"request_id": "r-1", "response": {"GeneratedToken": '
        '{"ContentToken": "\\u00e9\\/\\u0041"}}}}',
        # An agent may name itself; the balancer always puts its own name in.
        agent_frame({"GeneratedToken": {"ReasoningToken": "x"}}, generated_by="impostor"),
    ],
)
def test_equivalent_spellings_splice_canonically(frame: str | bytes) -> None:
    assert_spliced_like_typed(frame, "agent-1", "r-1")
    assert b"\\u" not in relayed(frame).response_json


@pytest.mark.parametrize(
    "response",
    [
        GeneratedToken(value=gt.Done(usage=TokenUsage.zero())),
        GeneratedToken(value=gt.ToolCallParsed(value=[])),
        GeneratedToken(value=gt.SamplerError(value="x")),
    ],
    ids=["done", "tool-calls", "error"],
)
def test_other_responses_take_the_typed_path(response: GeneratedToken) -> None:
    frame = encode_agent_to_balancer_message(
        FromAgentResponseEnvelope(request_id="r-1", response=response)
    )
    decoded = decode_agent_frame(frame)
    assert not isinstance(decoded, RelayedToken)
    assert decoded == decode_agent_to_balancer_message(frame)


@pytest.mark.parametrize(
    "frame",
    [
        b"not json",
        b'{"Response":{"request_id":"r-1","response":{"GeneratedToken":{"ContentToken":"x"}}}',
        token_frame("ContentToken", 5),
        token_frame("ContentToken", None),
        token_frame("ContentToken", ["x"]),
        token_frame("NotAToken", "x"),
        token_frame("contenttoken", "x"),
        agent_frame({"GeneratedToken": {"ContentToken": "x", "ReasoningToken": "y"}}),
        agent_frame({"GeneratedToken": {}}),
        agent_frame({"GeneratedToken": "ContentToken"}),
        agent_frame({"GeneratedToken": {"ContentToken": "x"}, "Embedding": "Done"}),
        agent_frame({"GeneratedToken": {"ContentToken": "x"}}, generated_by=7),
        agent_frame({"GeneratedToken": {"ContentToken": "x"}}, request_id=1),
        agent_frame({"GeneratedToken": {"ContentToken": "x"}}, request_id=None),
        agent_frame({"GeneratedToken": {"ContentToken": "x"}}, extra="field"),
        orjson.dumps({"Response": {"response": {"GeneratedToken": {"ContentToken": "x"}}}}),
        orjson.dumps(
            {
                "Response": {"request_id": "r-1", "response": {"GeneratedToken": {}}},
                "Notification": "DeregisterAgent",
            }
        ),
        orjson.dumps({"Response": [{"GeneratedToken": {"ContentToken": "x"}}]}),
        orjson.dumps([{"Response": {}}]),
    ],
)
def test_malformed_token_frames_are_rejected_as_before(frame: bytes) -> None:
    with pytest.raises(ProtocolError) as typed:
        decode_agent_to_balancer_message(frame)
    with pytest.raises(ProtocolError) as fast:
        decode_agent_frame(frame)
    assert str(fast.value) == str(typed.value)
