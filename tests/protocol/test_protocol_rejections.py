"""Inputs Paddler rejects are rejected with a ProtocolError naming the field or variant."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from paddler_tui.protocol import codec
from paddler_tui.protocol.agent_issue import AgentIssue
from paddler_tui.protocol.agent_socket import (
    decode_agent_to_balancer_message,
    decode_balancer_to_agent_message,
)
from paddler_tui.protocol.agent_status import BufferedRequestsSnapshot
from paddler_tui.protocol.conversation import ConversationMessage
from paddler_tui.protocol.desired_state import BalancerDesiredState
from paddler_tui.protocol.errors import ProtocolError
from paddler_tui.protocol.generated_token import GeneratedTokenResult
from paddler_tui.protocol.grammar import GrammarConstraint
from paddler_tui.protocol.inference_parameters import InferenceParameters
from paddler_tui.protocol.inference_socket import (
    decode_inference_client_message,
    decode_inference_server_message,
)
from paddler_tui.protocol.requests import ContinueFromConversationHistoryParams
from paddler_tui.protocol.tool import TaggedTool


def _parameters(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = codec.to_jsonable(
        codec.adapter_for(InferenceParameters), InferenceParameters.default()
    )
    data.update(changes)
    return data


def _reject(tp: Any, value: Any) -> ProtocolError:
    with pytest.raises(ProtocolError) as caught:
        codec.decode(codec.adapter_for(tp), orjson.dumps(value))
    return caught.value


def test_image_url_detail_is_rejected() -> None:
    message = {
        "role": "user",
        "content": [{"type": "image_url", "image_url": {"url": "data:,", "detail": "high"}}],
    }
    error = _reject(ConversationMessage, message)
    assert "image_url.detail" in str(error)
    assert "Extra inputs are not permitted" in str(error)


@pytest.mark.parametrize("key", ["name", "tool_calls"])
def test_unknown_message_keys_are_rejected(key: str) -> None:
    error = _reject(ConversationMessage, {"role": "assistant", "content": "x", key: "y"})
    assert key in str(error)


def test_unknown_part_type_is_rejected() -> None:
    error = _reject(ConversationMessage, {"role": "user", "content": [{"type": "audio"}]})
    assert "audio" in str(error)


def test_extra_inference_parameter_is_rejected() -> None:
    error = _reject(InferenceParameters, _parameters(seed=42))
    assert str(error).startswith("seed:")


def test_missing_inference_parameter_is_rejected() -> None:
    data = _parameters()
    del data["top_p"]
    error = _reject(InferenceParameters, data)
    assert str(error) == "top_p: Field required"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("n_batch", -1),
        ("context_size", 2**32),
        ("n_gpu_layers", 2**31),
        ("top_k", 1.5),
        ("enable_embeddings", 1),
        ("temperature", "0.8"),
        ("temperature", 1e39),
        ("k_cache_dtype", "q8_0"),
        ("pooling_type", "Average"),
    ],
)
def test_out_of_type_inference_parameters_are_rejected(field: str, value: Any) -> None:
    error = _reject(InferenceParameters, _parameters(**{field: value}))
    assert str(error).startswith(f"{field}:")


def test_floats_accept_integers_like_serde() -> None:
    adapter = codec.adapter_for(InferenceParameters)
    parameters = codec.decode(adapter, orjson.dumps(_parameters(temperature=1, top_p=0)))
    assert parameters.temperature == 1.0
    assert b'"temperature":1.0' in codec.encode(adapter, parameters)


def test_missing_required_state_key_is_rejected() -> None:
    data = codec.to_jsonable(
        codec.adapter_for(BalancerDesiredState), BalancerDesiredState.default()
    )
    del data["use_chat_template_override"]
    error = _reject(BalancerDesiredState, data)
    assert "use_chat_template_override" in str(error)


def test_wrong_variant_name_is_named() -> None:
    error = _reject(GeneratedTokenResult, {"ContentTokens": "x"})
    assert "unknown variant 'ContentTokens'" in str(error)
    assert "ContentToken" in str(error)


def test_wrong_unit_variant_is_named() -> None:
    error = _reject(BalancerDesiredState, {**_state(), "model": "Nothing"})
    assert "model" in str(error)
    assert "'Nothing'" in str(error)


def _state() -> dict[str, Any]:
    data: dict[str, Any] = codec.to_jsonable(
        codec.adapter_for(BalancerDesiredState), BalancerDesiredState.default()
    )
    return data


def test_extra_key_in_struct_variant_is_rejected() -> None:
    error = _reject(AgentIssue, {"SlotCannotStart": {"error": "e", "slot_index": 0, "x": 1}})
    assert str(error).startswith("SlotCannotStart.x:")


def test_negative_slot_index_is_rejected() -> None:
    error = _reject(AgentIssue, {"SlotCannotStart": {"error": "e", "slot_index": -1}})
    assert "SlotCannotStart.slot_index" in str(error)


def test_multi_key_variant_object_is_rejected() -> None:
    _reject(GeneratedTokenResult, {"ContentToken": "a", "ReasoningToken": "b"})


def test_grammar_needs_its_type_tag() -> None:
    error = _reject(GrammarConstraint, {"grammar": "root ::= x", "root": "root"})
    assert "type" in str(error)
    _reject(GrammarConstraint, {"type": "json_schema", "json_schema": "{}"})
    # The JSON schema is a string containing JSON, not an object.
    _reject(GrammarConstraint, {"type": "json_schema", "schema": {"type": "object"}})


def test_tool_needs_its_type_tag() -> None:
    _reject(TaggedTool, {"function": {"name": "f", "description": "d"}})
    _reject(TaggedTool, {"type": "retrieval", "function": {"name": "f", "description": "d"}})


def test_tool_description_is_required() -> None:
    error = _reject(TaggedTool, {"type": "function", "function": {"name": "f"}})
    assert "function.description: Field required" in str(error)


def test_tool_schema_rejects_other_top_level_keys() -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "f",
            "description": "d",
            "parameters": {"type": "object", "$schema": "http://json-schema.org/draft-07/schema"},
        },
    }
    error = _reject(TaggedTool, tool)
    assert "$schema" in str(error)


def test_tool_schema_requires_type() -> None:
    tool = {"type": "function", "function": {"name": "f", "description": "d", "parameters": {}}}
    error = _reject(TaggedTool, tool)
    assert "parameters.type: Field required" in str(error)


def test_conversation_params_require_their_fields() -> None:
    error = _reject(
        ContinueFromConversationHistoryParams,
        {"conversation_history": [], "enable_thinking": False, "max_tokens": 10},
    )
    assert "add_generation_prompt: Field required" in str(error)


def test_invalid_json_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="invalid JSON"):
        decode_inference_server_message(b'{"Notification":')
    with pytest.raises(ProtocolError, match="invalid JSON"):
        decode_agent_to_balancer_message("")


def test_socket_messages_reject_the_other_direction() -> None:
    with pytest.raises(ProtocolError, match="unknown variant 'Response'"):
        decode_inference_client_message(
            '{"Response":{"generated_by":null,"request_id":"r","response":"Timeout"}}'
        )
    with pytest.raises(ProtocolError, match="unknown variant 'RegisterAgent'"):
        decode_balancer_to_agent_message(
            '{"Notification":{"RegisterAgent":{"name":null,"slot_aggregated_status_snapshot":{}}}}'
        )


def test_agent_only_requests_are_not_inference_requests() -> None:
    with pytest.raises(ProtocolError, match="unknown variant 'GetModelMetadata'"):
        decode_inference_client_message('{"Request":{"id":"a","request":"GetModelMetadata"}}')


def test_error_path_names_nested_fields() -> None:
    with pytest.raises(ProtocolError) as caught:
        decode_agent_to_balancer_message(
            '{"Notification":{"UpdateAgentStatus":{"slot_aggregated_status_snapshot":'
            '{"desired_slots_total":1}}}}'
        )
    assert (
        "Notification.UpdateAgentStatus.slot_aggregated_status_snapshot.version: Field required"
        in caught.value.errors
    )


def test_buffered_requests_snapshot_is_lenient() -> None:
    adapter = codec.adapter_for(BufferedRequestsSnapshot)
    snapshot = codec.decode(adapter, '{"buffered_requests_current": 2, "extra": true}')
    assert codec.encode(adapter, snapshot) == b'{"buffered_requests_current":2}'
