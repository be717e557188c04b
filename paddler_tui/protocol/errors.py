"""``ProtocolError``: the one exception every decode entry point raises.

Callers (HTTP handlers, socket loops) only need to catch one thing, whether the bytes were not JSON
or the JSON did not fit the schema; the message names the offending field path or variant.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import orjson
    from pydantic import ValidationError


def _location(loc: tuple[int | str, ...]) -> str:
    # A newtype variant's payload sits in a field named ``value`` right after the variant's tag;
    # serde has no such level, so it is left out of the path.
    parts = [
        str(part)
        for index, part in enumerate(loc)
        if not (part == "value" and index > 0 and str(loc[index - 1])[:1].isupper())
    ]
    return ".".join(parts) or "<root>"


def _unknown_tag(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        return str(next(iter(value)))
    return None


def _describe(error: Any) -> str:
    message = str(error["msg"])
    if error["type"] == "unknown_variant":
        tag = _unknown_tag(error.get("input"))
        if tag is not None:
            message = f"unknown variant {tag!r}; {message}"
    return f"{_location(tuple(error['loc']))}: {message}"


class ProtocolError(ValueError):
    """Bytes that are not valid JSON, or JSON that is not the expected wire type."""

    def __init__(self, message: str, *, errors: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors if errors is not None else [message]

    @classmethod
    def from_json_error(cls, error: orjson.JSONDecodeError) -> ProtocolError:
        return cls(f"invalid JSON: {error}")

    @classmethod
    def from_validation_error(cls, error: ValidationError) -> ProtocolError:
        described = [_describe(item) for item in error.errors(include_url=False)]
        return cls("; ".join(described), errors=described)
