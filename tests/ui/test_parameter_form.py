from __future__ import annotations

import pytest

from paddler_tui.protocol.inference_parameters import InferenceParameters
from paddler_tui.ui.parameter_form import (
    FIELDS_BY_NAME,
    PARAMETER_FIELDS,
    form_values,
    parse_parameters,
)


def test_every_protocol_field_has_an_editor_with_help() -> None:
    assert [field.name for field in PARAMETER_FIELDS] == list(InferenceParameters.model_fields)
    assert all(field.help for field in PARAMETER_FIELDS)
    assert FIELDS_BY_NAME["enable_embeddings"].kind == "bool"
    assert FIELDS_BY_NAME["top_p"].kind == "float"
    assert FIELDS_BY_NAME["n_gpu_layers"].kind == "int"
    assert "Last" in FIELDS_BY_NAME["pooling_type"].choices


def test_form_values_round_trip() -> None:
    defaults = InferenceParameters.default()
    values = form_values(defaults)
    assert values["temperature"] == "0.8"
    assert values["enable_embeddings"] is False
    assert parse_parameters(values).parameters == defaults


def test_values_are_converted() -> None:
    values = form_values(InferenceParameters.default())
    values.update(temperature=" 0 ", top_k="40", enable_embeddings=True, pooling_type="Mean")
    parsed = parse_parameters(values)
    assert parsed.errors == {}
    assert parsed.parameters is not None
    assert parsed.parameters.temperature == 0.0
    assert parsed.parameters.top_k == 40
    assert parsed.parameters.enable_embeddings is True
    assert parsed.parameters.pooling_type == "Mean"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("top_k", "4.5", "expected a whole number"),
        ("top_k", "2147483648", "must be at most 2147483647"),
        ("context_size", "-1", "must be at least 0"),
        ("temperature", "warm", "expected a number"),
        ("temperature", "inf", "expected a finite number"),
        ("min_p", "1e39", "number out of range for f32"),
        ("pooling_type", "Max", "expected one of Unspecified, None, Mean, Cls, Last, Rank"),
        ("enable_embeddings", "yes", "expected on or off"),
        ("embedding_batch_size", "0", "must be greater than zero"),
        ("image_resize_to_fit", "0", "must be greater than zero"),
    ],
)
def test_each_bad_field_gets_its_own_message(name: str, value: str, message: str) -> None:
    values = form_values(InferenceParameters.default())
    values[name] = value
    parsed = parse_parameters(values)
    assert parsed.parameters is None
    assert parsed.errors == {name: message}


def test_every_wrong_field_is_reported_at_once() -> None:
    values = form_values(InferenceParameters.default())
    values.update(top_k="x", top_p="y", temperature="-1e99", context_size="-5")
    del values["n_batch"]
    assert parse_parameters(values).errors == {
        "n_batch": "missing",
        "context_size": "must be at least 0",
        "temperature": "number out of range for f32",
        "top_k": "expected a whole number",
        "top_p": "expected a number",
    }
