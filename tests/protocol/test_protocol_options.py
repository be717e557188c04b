"""Option fields may be omitted on input and always go out, as null when absent."""

from __future__ import annotations

import orjson

from paddler_tui.protocol import codec
from paddler_tui.protocol.agent_socket import (
    FromAgentNotificationEnvelope,
    RegisterAgent,
    decode_agent_to_balancer_message,
)
from paddler_tui.protocol.agent_status import SlotAggregatedStatusSnapshot
from paddler_tui.protocol.desired_state import BalancerDesiredState
from paddler_tui.protocol.inference_parameters import InferenceParameters
from paddler_tui.protocol.inference_socket import (
    ResponseEnvelope,
    decode_inference_server_message,
    encode_inference_server_message,
)
from paddler_tui.protocol.requests import (
    ContinueFromConversationHistoryParams,
    ContinueFromRawPromptParams,
)
from paddler_tui.protocol.tool import FunctionDefinition, TaggedTool, Tool, ToolParametersSchema


def test_omitted_chat_template_override_is_null() -> None:
    adapter = codec.adapter_for(BalancerDesiredState)
    data = codec.to_jsonable(adapter, BalancerDesiredState.default())
    del data["chat_template_override"]
    state = codec.decode(adapter, orjson.dumps(data))
    assert state.chat_template_override is None
    assert orjson.loads(codec.encode(adapter, state))["chat_template_override"] is None


def test_omitted_generated_by_is_null() -> None:
    message = decode_inference_server_message(
        '{"Response":{"request_id":"r","response":{"Embedding":"Done"}}}'
    )
    assert isinstance(message, ResponseEnvelope)
    assert message.generated_by is None
    assert orjson.loads(encode_inference_server_message(message))["Response"]["generated_by"] is (
        None
    )


def test_omitted_snapshot_options_are_null() -> None:
    adapter = codec.adapter_for(SlotAggregatedStatusSnapshot)
    snapshot = codec.decode(
        adapter,
        '{"desired_slots_total":1,"download_current":0,"download_indeterminate":false,'
        '"download_total":0,"issues":[],"slots_processing":0,"slots_total":0,'
        '"state_application_status":"Fresh","uses_chat_template_override":false,"version":0}',
    )
    assert snapshot.download_filename is None
    assert snapshot.model_path is None
    encoded = orjson.loads(codec.encode(adapter, snapshot))
    assert encoded["download_filename"] is None
    assert encoded["model_path"] is None


def test_register_agent_name_may_be_omitted() -> None:
    message = decode_agent_to_balancer_message(
        '{"Notification":{"RegisterAgent":{"slot_aggregated_status_snapshot":'
        '{"desired_slots_total":1,"download_current":0,"download_indeterminate":false,'
        '"download_total":0,"issues":[],"slots_processing":0,"slots_total":0,'
        '"state_application_status":"Fresh","uses_chat_template_override":false,"version":0}}}}'
    )
    assert isinstance(message, FromAgentNotificationEnvelope)
    notification = message.value
    assert isinstance(notification, RegisterAgent)
    assert notification.name is None


def test_conversation_defaults() -> None:
    adapter = codec.adapter_for(ContinueFromConversationHistoryParams)
    params = codec.decode(
        adapter,
        '{"add_generation_prompt":true,"conversation_history":[],"enable_thinking":false,'
        '"max_tokens":5}',
    )
    assert params.grammar is None
    assert params.parse_tool_calls is False
    assert params.tools == []
    assert codec.encode(adapter, params) == (
        b'{"add_generation_prompt":true,"conversation_history":[],"enable_thinking":false,'
        b'"grammar":null,"max_tokens":5,"parse_tool_calls":false,"tools":[]}'
    )


def test_raw_prompt_grammar_defaults_to_null() -> None:
    adapter = codec.adapter_for(ContinueFromRawPromptParams)
    params = codec.decode(adapter, '{"max_tokens":5,"raw_prompt":"x"}')
    assert params.grammar is None
    assert codec.encode(adapter, params) == b'{"grammar":null,"max_tokens":5,"raw_prompt":"x"}'


def test_inference_parameters_have_no_defaults_on_the_wire() -> None:
    assert all(field.is_required() for field in InferenceParameters.model_fields.values())


def test_tool_forwarding_omits_absent_schema_keys_and_empty_parameters() -> None:
    adapter = codec.adapter_for(TaggedTool)
    with_nulls = codec.decode(
        adapter,
        '{"type":"function","function":{"name":"f","description":"d","parameters":'
        '{"type":"object","properties":null,"required":null,"additionalProperties":null}}}',
    )
    assert codec.encode(adapter, with_nulls) == (
        b'{"type":"function","function":{"name":"f","description":"d",'
        b'"parameters":{"type":"object"}}}'
    )
    prefix = '{"type":"function","function":{"name":"f","description":"d"'
    for parameters in ("", ',"parameters":null'):
        empty = codec.decode(adapter, prefix + parameters + "}}")
        assert empty.function.parameters is None
        assert codec.encode(adapter, empty) == (
            b'{"type":"function","function":{"name":"f","description":"d"}}'
        )


def test_tool_constructed_in_python() -> None:
    tool = Tool(
        function=FunctionDefinition(
            name="f",
            description="d",
            parameters=ToolParametersSchema(type="object", additionalProperties=False),
        )
    )
    assert codec.encode(codec.adapter_for(Tool), tool) == (
        b'{"type":"function","function":{"name":"f","description":"d",'
        b'"parameters":{"type":"object","additionalProperties":false}}}'
    )
