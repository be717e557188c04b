"""Checking parsed tool calls against the request's tools and their JSON Schemas."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from jsonschema.exceptions import SchemaError
from jsonschema.validators import validator_for

from paddler_tui.protocol.generated_token import ValidJson

if TYPE_CHECKING:
    from collections.abc import Sequence

    from paddler_tui.protocol.tool import Tool
    from paddler_tui.server.agent.output.tool_call_parser import RawToolCall


class ToolSchemaInvalidError(ValueError):
    """A tool's parameters are not a JSON Schema; the message is Paddler's ToolSchemaInvalid."""


def _quoted(name: str) -> str:
    return json.dumps(name, ensure_ascii=False)


class ToolCallValidator:
    """One compiled validator per tool name; ``None`` for a tool without parameters."""

    def __init__(self, tools: Sequence[Tool]) -> None:
        """Raises ToolSchemaInvalidError for a schema that does not compile."""
        self._validators: dict[str, Any] = {}
        for tool in tools:
            function = tool.function
            validator = None
            if function.parameters is not None:
                schema = function.parameters.model_dump(mode="json")
                cls = validator_for(schema)
                try:
                    cls.check_schema(schema)
                except SchemaError as error:
                    raise ToolSchemaInvalidError(
                        f"tool {_quoted(function.name)} parameters are not a valid JSON Schema: "
                        f"{error.message}"
                    ) from error
                validator = cls(schema)
            self._validators[function.name] = validator

    def errors(self, calls: Sequence[RawToolCall]) -> list[str]:
        """One message per call that fails: an unknown name, or the first schema error."""
        messages: list[str] = []
        for call in calls:
            if call.name not in self._validators:
                messages.append(f"unknown tool name {_quoted(call.name)}")
                continue
            validator = self._validators[call.name]
            # Arguments that are not JSON are passed through unchecked, as in Paddler.
            if validator is None or not isinstance(call.arguments, ValidJson):
                continue
            first = next(iter(validator.iter_errors(call.arguments.value)), None)
            if first is not None:
                messages.append(
                    f"arguments for tool {_quoted(call.name)} failed schema check: {first.message}"
                )
        return messages
