"""``Tool``: function tools of the native API, and how they are validated and forwarded.

Paddler parses a tool with every schema key present (``null`` when absent), validates it, and
forwards the validated form to agents, which omits absent schema keys and empty ``parameters``.
Only the forwarded form is ever serialized, so that is what these models emit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, JsonValue, SerializerFunctionWrapHandler, model_serializer

from paddler_tui.protocol.wire import WireModel

if TYPE_CHECKING:
    from collections.abc import Iterable


class ToolParametersSchema(WireModel):
    """The top level of a JSON Schema; other top-level keys are rejected, as in Paddler."""

    type: str
    properties: dict[str, JsonValue] | None = None
    required: list[str] | None = None
    # Camel case is the wire name; an alias would also accept the snake-case spelling.
    additionalProperties: JsonValue = None

    @model_serializer(mode="wrap")
    def _omit_absent(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {key: value for key, value in handler(self).items() if value is not None}

    def validation_error(self) -> str | None:
        """Every ``required`` name must be a property (checked only when both keys exist)."""
        if self.required is None or self.properties is None:
            return None
        for name in self.required:
            if name not in self.properties:
                return f"Required field '{name}' not found in properties"
        return None


class FunctionDefinition(WireModel):
    name: str
    description: str
    # ``None`` is Paddler's ``Parameters::Empty`` (key absent or ``null``).
    parameters: ToolParametersSchema | None = None

    @model_serializer(mode="wrap")
    def _omit_empty_parameters(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if data.get("parameters") is None:
            data.pop("parameters", None)
        return data


class Tool(WireModel):
    type: Literal["function"] = "function"
    function: FunctionDefinition


# serde's internal tag is mandatory on input; a one-member discriminated union enforces that while
# ``Tool(function=...)`` still works in Python.
TaggedTool = Annotated[Tool, Field(discriminator="type")]


def validate_tools(tools: Iterable[Tool]) -> str | None:
    """The first schema validation failure, worded as Paddler words it, or ``None``."""
    for tool in tools:
        if tool.function.parameters is not None:
            error = tool.function.parameters.validation_error()
            if error is not None:
                return error
    return None
