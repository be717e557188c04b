"""Parsing one tool-call section (markers included) into calls, for the formats models use.

* Hermes / Qwen: ``<tool_call>{"name": …, "arguments": {…}}</tool_call>``, and Qwen's XML body
  ``<tool_call><function=name><parameter=key>value</parameter></function></tool_call>``.
* Llama 3: ``<|python_tag|>{"name": …, "parameters": {…}}`` or the bare JSON object alone.
* Mistral: ``[TOOL_CALLS][{"name": …, "arguments": {…}}, …]`` or ``[TOOL_CALLS]name[ARGS]{…}``.

Arguments that do not parse as JSON are kept as the raw string (``InvalidJson``), as Paddler does.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from pydantic import JsonValue, TypeAdapter, ValidationError

from paddler_tui.protocol.generated_token import InvalidJson, ToolCallArguments, ValidJson

_JSON_VALUE: TypeAdapter[JsonValue] = TypeAdapter(JsonValue)
_DECODER = json.JSONDecoder()
_QWEN_FUNCTION = re.compile(r"<function=([^>\s]+)>(.*?)(?:</function>|$)", re.DOTALL)
_QWEN_PARAMETER = re.compile(r"<parameter=([^>\s]+)>(.*?)(?:</parameter>|$)", re.DOTALL)
# A call whose JSON does not parse (often cut off by max_tokens): name first, then arguments.
_LOOSE_CALL = re.compile(
    r'^\{\s*"name"\s*:\s*"((?:[^"\\]|\\.)*)"\s*,\s*"(?:arguments|parameters)"\s*:\s*(.*?)\s*\}?\s*$',
    re.DOTALL,
)


@dataclass(frozen=True, slots=True)
class RawToolCall:
    name: str
    arguments: ToolCallArguments


class UnrecognizedToolCallError(ValueError):
    """No supported format matches; the message says what was expected."""


def parse_tool_call_section(section: str) -> list[RawToolCall]:
    """The calls of one section; raises UnrecognizedToolCallError."""
    text = section.strip()
    for marker, parse in (
        ("<tool_call>", _parse_hermes),
        ("[TOOL_CALLS]", _parse_mistral),
        ("<|python_tag|>", _parse_json_calls),
    ):
        if text.startswith(marker):
            return parse(text[len(marker) :].strip())
    if text.startswith("{"):
        return _parse_json_calls(text)
    raise UnrecognizedToolCallError("no known tool-call format starts the section")


def _parse_hermes(body: str) -> list[RawToolCall]:
    body = body.removesuffix("</tool_call>").strip()
    if body.startswith("<function="):
        calls = [_qwen_xml_call(match) for match in _QWEN_FUNCTION.finditer(body)]
        if not calls:
            raise UnrecognizedToolCallError('expected "<function=name>" to name the tool')
        return calls
    return _parse_json_calls(body)


def _qwen_xml_call(function: re.Match[str]) -> RawToolCall:
    arguments: dict[str, JsonValue] = {}
    for parameter in _QWEN_PARAMETER.finditer(function.group(2)):
        value = parameter.group(2).strip()
        parsed = _json_value(value)
        arguments[parameter.group(1)] = value if parsed is None else parsed.value
    return RawToolCall(function.group(1), ValidJson(value=arguments))


def _parse_mistral(body: str) -> list[RawToolCall]:
    if body.startswith("["):
        return _parse_json_calls(body)
    calls: list[RawToolCall] = []
    for part in body.split("[TOOL_CALLS]"):
        name, separator, arguments = part.partition("[ARGS]")
        if not separator or not name.strip():
            raise UnrecognizedToolCallError('expected "[TOOL_CALLS]name[ARGS]{arguments}"')
        calls.append(RawToolCall(name.strip(), _arguments(arguments.strip())))
    return calls


def _parse_json_calls(body: str) -> list[RawToolCall]:
    """One or more JSON call objects (or arrays of them), separated by ``;``, ``,`` or blanks."""
    try:
        values = _json_values(body)
    except ValueError:
        loose = _LOOSE_CALL.match(body)
        if loose is None:
            raise UnrecognizedToolCallError(
                'expected a JSON object with "name" and "arguments"'
            ) from None
        return [RawToolCall(loose.group(1), InvalidJson(value=loose.group(2)))]
    calls: list[RawToolCall] = []
    for value in values:
        for item in value if isinstance(value, list) else [value]:
            calls.append(_json_call(item))
    if not calls:
        raise UnrecognizedToolCallError("the tool-call section holds no call")
    return calls


def _json_call(item: JsonValue) -> RawToolCall:
    name = item.get("name") if isinstance(item, dict) else None
    if not isinstance(item, dict) or not isinstance(name, str):
        raise UnrecognizedToolCallError('expected a JSON object with a string "name"')
    arguments = item.get("arguments", item.get("parameters", {}))
    if isinstance(arguments, str):
        return RawToolCall(name, _arguments(arguments))
    return RawToolCall(name, ValidJson(value=arguments))


def _arguments(text: str) -> ToolCallArguments:
    parsed = _json_value(text)
    return InvalidJson(value=text) if parsed is None else parsed


def _json_value(text: str) -> ValidJson | None:
    try:
        return ValidJson(value=_JSON_VALUE.validate_json(text))
    except ValidationError:
        return None


def _json_values(text: str) -> list[JsonValue]:
    values: list[JsonValue] = []
    position = 0
    while True:
        while position < len(text) and text[position] in " \t\r\n;,":
            position += 1
        if position == len(text):
            return values
        value, position = _DECODER.raw_decode(text, position)
        values.append(_JSON_VALUE.validate_python(value))
