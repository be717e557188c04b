"""Base classes that give pydantic models serde's JSON shapes.

Paddler's wire types are Rust enums serialized with serde's default *external* tagging:
a unit variant is a bare string (``"Done"``), a newtype variant a single-key object holding its
payload (``{"ContentToken": "Hi"}``) and a struct variant a single-key object holding its fields
(``{"ImageExceedsBatchSize": {"image_tokens": 1, "n_batch": 2}}``). Each variant is one class here
and a union of variants is built with :func:`externally_tagged`, which dispatches on the tag so a
wrong variant name is reported as such instead of as a pile of per-member errors.
"""

from __future__ import annotations

import typing
from typing import Any, ClassVar

from pydantic import (
    BaseModel,
    ConfigDict,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    model_serializer,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema


class WireModel(BaseModel):
    """A serde struct with ``deny_unknown_fields``: unknown keys are errors, types are strict."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class LenientWireModel(BaseModel):
    """A serde struct without ``deny_unknown_fields``: unknown keys are dropped."""

    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)


class Variant(WireModel):
    """One variant of an externally tagged enum; ``TAG`` defaults to the class name."""

    TAG: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "TAG" not in cls.__dict__:
            cls.TAG = cls.__name__


class UnitVariant(Variant):
    """Serialized as the bare string ``TAG``."""

    @model_validator(mode="before")
    @classmethod
    def _untag(cls, data: Any) -> Any:
        if data == cls.TAG:
            return {}
        if isinstance(data, str):
            raise PydanticCustomError("unit_variant", "expected the string {tag}", {"tag": cls.TAG})
        return data

    @model_serializer(mode="plain")
    def _tag(self) -> str:
        return self.TAG

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"const": cls.TAG, "type": "string"}


class NewtypeVariant(Variant):
    """Serialized as ``{TAG: value}``; subclasses declare exactly one field, ``value``."""

    @model_validator(mode="before")
    @classmethod
    def _untag(cls, data: Any) -> Any:
        # Keyword construction (``ContentToken(value="Hi")``) arrives untagged.
        if isinstance(data, dict) and len(data) == 1 and cls.TAG in data:
            return {"value": data[cls.TAG]}
        return data

    @model_serializer(mode="wrap")
    def _tag(self, handler: Any) -> dict[str, Any]:
        return {self.TAG: handler(self)["value"]}

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        fields = handler.resolve_ref_schema(handler(schema))
        return _tagged(cls.TAG, fields["properties"]["value"])


class StructVariant(Variant):
    """Serialized as ``{TAG: {fields…}}``."""

    @model_validator(mode="before")
    @classmethod
    def _untag(cls, data: Any) -> Any:
        # Keyword construction arrives untagged; no struct variant has a field named like its tag.
        if isinstance(data, dict) and len(data) == 1 and cls.TAG in data:
            return data[cls.TAG]
        return data

    @model_serializer(mode="wrap")
    def _tag(self, handler: Any) -> dict[str, Any]:
        return {self.TAG: handler(self)}

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return _tagged(cls.TAG, handler.resolve_ref_schema(handler(schema)))


def _tagged(tag: str, payload: JsonSchemaValue) -> JsonSchemaValue:
    """The JSON Schema of ``{tag: payload}``: what validation accepts, so OpenAPI documents and
    fuzzers describe the wire rather than the Python fields."""
    return {
        "type": "object",
        "properties": {tag: payload},
        "required": [tag],
        "additionalProperties": False,
    }


def _external_tag(data: Any) -> str | None:
    if isinstance(data, Variant):
        return data.TAG
    if isinstance(data, str):
        return data
    if isinstance(data, dict) and len(data) == 1:
        return str(next(iter(data)))
    return None


class ExternallyTagged:
    """Marks a union of :class:`Variant` classes as one serde enum.

    ``Annotated[A | B | C, ExternallyTagged()]`` validates by looking at the tag first, so an
    unknown variant name is reported as exactly that, and nested errors keep their field paths.
    """

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        variants: tuple[type[Variant], ...] = typing.get_args(source) or (source,)
        choices: dict[typing.Hashable, core_schema.CoreSchema] = {}
        for variant in variants:
            if variant.TAG in choices:
                raise TypeError(f"two variants are tagged {variant.TAG!r}")
            choices[variant.TAG] = handler.generate_schema(variant)
        expected = ", ".join(str(tag) for tag in choices)
        return core_schema.tagged_union_schema(
            choices,
            _external_tag,
            custom_error_type="unknown_variant",
            custom_error_message=f"unknown variant, expected one of: {expected}",
        )
