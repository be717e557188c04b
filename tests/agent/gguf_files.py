"""Make GGUF files for agent tests: the default model with a metadata key dropped or added."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

_SCALAR_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_BOOL, _STRING, _ARRAY = 7, 8, 9
_ALIGNMENT_KEY = "general.alignment"


def _u32(stream: BinaryIO) -> int:
    value: int = struct.unpack("<I", stream.read(4))[0]
    return value


def _u64(stream: BinaryIO) -> int:
    value: int = struct.unpack("<Q", stream.read(8))[0]
    return value


def _skip_value(stream: BinaryIO, value_type: int) -> None:
    if value_type == _STRING:
        stream.seek(_u64(stream), 1)
    elif value_type == _ARRAY:
        item_type, count = _u32(stream), _u64(stream)
        if item_type in _SCALAR_SIZES:
            stream.seek(_SCALAR_SIZES[item_type] * count, 1)
        else:
            for _ in range(count):
                _skip_value(stream, item_type)
    else:
        stream.seek(_SCALAR_SIZES[value_type], 1)


def _bool_entry(key: str, value: bool) -> bytes:
    name = key.encode()
    return struct.pack("<Q", len(name)) + name + struct.pack("<IB", _BOOL, value)


def copy_gguf(
    source: Path, target: Path, *, drop: str | None = None, add_bools: dict[str, bool] | None = None
) -> None:
    """Copy a GGUF (v2/v3) file leaving out a metadata key and adding boolean ones, re-padding
    the tensor data."""
    with source.open("rb") as stream:
        magic, version = stream.read(4), _u32(stream)
        assert magic == b"GGUF" and version >= 2
        tensor_count, kv_count = _u64(stream), _u64(stream)
        kept: list[bytes] = []
        alignment = 32
        for _ in range(kv_count):
            start = stream.tell()
            key = stream.read(_u64(stream)).decode()
            value_type = _u32(stream)
            value_start = stream.tell()
            _skip_value(stream, value_type)
            end = stream.tell()
            if key == _ALIGNMENT_KEY:
                stream.seek(value_start)
                alignment = _u32(stream)
                stream.seek(end)
            if key != drop:
                stream.seek(start)
                kept.append(stream.read(end - start))
        assert drop is None or len(kept) == kv_count - 1, f"{drop} is not in {source}"
        kept.extend(_bool_entry(key, value) for key, value in (add_bools or {}).items())
        tensors_start = stream.tell()
        for _ in range(tensor_count):
            stream.seek(_u64(stream), 1)
            stream.seek(8 * _u32(stream) + 4 + 8, 1)
        tensor_infos_end = stream.tell()
        data_start = -(-tensor_infos_end // alignment) * alignment
        stream.seek(tensors_start)
        tensor_infos = stream.read(tensor_infos_end - tensors_start)
        with target.open("wb") as out:
            out.write(magic + struct.pack("<IQQ", version, tensor_count, len(kept)))
            out.write(b"".join(kept))
            out.write(tensor_infos)
            out.write(b"\0" * (-out.tell() % alignment))
            stream.seek(data_start)
            while chunk := stream.read(1 << 24):
                out.write(chunk)
