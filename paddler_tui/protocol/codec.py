"""JSON encoding and decoding of wire types with orjson underneath.

Decoding parses with orjson and then validates the Python value, so both failure kinds surface as
:class:`ProtocolError`. Encoding dumps to JSON-compatible Python first so every model serializer
(external tags, omitted keys, sorted maps) applies, then lets orjson write compact JSON like
serde_json does.
"""

from __future__ import annotations

from functools import cache
from typing import Any, TypeVar

import orjson
from pydantic import TypeAdapter, ValidationError

from paddler_tui.protocol.errors import ProtocolError

T = TypeVar("T")


@cache
def adapter_for(tp: Any) -> TypeAdapter[Any]:
    """A cached ``TypeAdapter``; building one compiles a schema, which is slow."""
    return TypeAdapter(tp)


def parse(data: bytes | bytearray | memoryview | str) -> Any:
    """Parse ``data`` as JSON; raise :class:`ProtocolError` if it is not."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise ProtocolError.from_json_error(error) from error


def decode(adapter: TypeAdapter[T], data: bytes | bytearray | memoryview | str) -> T:
    """Parse ``data`` as JSON and validate it; raise :class:`ProtocolError` on any failure."""
    return validate(adapter, parse(data))


def validate(adapter: TypeAdapter[T], value: Any) -> T:
    """Validate already parsed JSON; raise :class:`ProtocolError` on failure."""
    try:
        return adapter.validate_python(value)
    except ValidationError as error:
        raise ProtocolError.from_validation_error(error) from error


def to_jsonable(adapter: TypeAdapter[T], value: T) -> Any:
    """The JSON-compatible Python value (dicts, lists, scalars) serde would produce."""
    return adapter.dump_python(value, mode="json", by_alias=True)


def encode(adapter: TypeAdapter[T], value: T) -> bytes:
    """Compact JSON bytes, keys in declaration order."""
    return orjson.dumps(to_jsonable(adapter, value))
