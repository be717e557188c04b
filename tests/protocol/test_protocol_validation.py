"""Validation texts that Paddler answers with are reproduced exactly."""

from __future__ import annotations

import pytest

from paddler_tui.protocol import codec
from paddler_tui.protocol.inference_parameters import InferenceParameters
from paddler_tui.protocol.requests import ContinueFromConversationHistoryParams
from paddler_tui.protocol.tool import (
    FunctionDefinition,
    Tool,
    ToolParametersSchema,
    validate_tools,
)


def _tool(schema: ToolParametersSchema | None) -> Tool:
    return Tool(function=FunctionDefinition(name="f", description="d", parameters=schema))


def test_default_parameters_are_valid() -> None:
    assert InferenceParameters.default().validation_error() is None


@pytest.mark.parametrize(
    ("changes", "text"),
    [
        ({"image_resize_to_fit": 0}, "image_resize_to_fit must be greater than zero"),
        ({"embedding_batch_size": 0}, "embedding_batch_size must be greater than zero"),
        # Paddler checks image_resize_to_fit first.
        (
            {"image_resize_to_fit": 0, "embedding_batch_size": 0},
            "image_resize_to_fit must be greater than zero",
        ),
    ],
)
def test_inference_parameter_texts(changes: dict[str, int], text: str) -> None:
    parameters = InferenceParameters.default().model_copy(update=changes)
    assert parameters.validation_error() == text


def test_required_field_missing_from_properties() -> None:
    schema = ToolParametersSchema(
        type="object", properties={"location": {"type": "string"}}, required=["location", "x"]
    )
    assert validate_tools([_tool(schema)]) == "Required field 'x' not found in properties"


@pytest.mark.parametrize(
    "schema",
    [
        None,
        ToolParametersSchema(type="object"),
        # Without properties there is nothing to check against, as in Paddler.
        ToolParametersSchema(type="object", required=["x"]),
        ToolParametersSchema(type="object", properties={"x": {}}, required=["x"]),
    ],
)
def test_valid_tool_schemas(schema: ToolParametersSchema | None) -> None:
    assert validate_tools([_tool(schema)]) is None


def test_first_failing_tool_is_reported() -> None:
    bad_a = ToolParametersSchema(type="object", properties={}, required=["a"])
    bad_b = ToolParametersSchema(type="object", properties={}, required=["b"])
    assert validate_tools([_tool(None), _tool(bad_a), _tool(bad_b)]) == (
        "Required field 'a' not found in properties"
    )


def test_conversation_params_report_tool_errors() -> None:
    params = codec.decode(
        codec.adapter_for(ContinueFromConversationHistoryParams),
        '{"add_generation_prompt":true,"conversation_history":[],"enable_thinking":false,'
        '"max_tokens":5,"tools":[{"type":"function","function":{"name":"f","description":"d",'
        '"parameters":{"type":"object","properties":{},"required":["city"]}}}]}',
    )
    assert params.validation_error() == "Required field 'city' not found in properties"
