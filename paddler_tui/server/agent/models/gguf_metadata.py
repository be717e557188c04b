"""Read a GGUF file's key/value metadata (and its tensors' types) without llama.cpp.

The values are stringified the way llama.cpp's ``llama_model_meta_val_str`` reports them, which is
what Paddler publishes as ``ModelMetadata``:

* strings verbatim (invalid UTF-8 is replaced with U+FFFD: Python needs ``str``, llama.cpp hands
  out raw bytes);
* integers in decimal, booleans as ``true``/``false``;
* floats through C++ ``std::to_string``, i.e. ``printf("%f")`` (``1e-05`` becomes ``0.000010``);
* **array-valued keys are left out**, because llama.cpp skips them when it builds the string map
  (``tokenizer.ggml.tokens`` alone would be megabytes).

Only little-endian GGUF v2 and v3 are read; v1 (32-bit counts) has not been loadable by llama.cpp
since 2023, and big-endian files are rejected too.
"""

from __future__ import annotations

import os
import struct
from typing import BinaryIO, Final

GGUF_MAGIC: Final = b"GGUF"
_SUPPORTED_VERSIONS: Final = frozenset({2, 3})

# GGUF value type ids → struct format of the fixed-size scalars.
_UINT8, _INT8, _UINT16, _INT16, _UINT32, _INT32, _FLOAT32, _BOOL = range(8)
_STRING, _ARRAY, _UINT64, _INT64, _FLOAT64 = range(8, 13)
_SCALAR_FORMATS: Final[dict[int, str]] = {
    _UINT8: "<B",
    _INT8: "<b",
    _UINT16: "<H",
    _INT16: "<h",
    _UINT32: "<I",
    _INT32: "<i",
    _FLOAT32: "<f",
    _BOOL: "<?",
    _UINT64: "<Q",
    _INT64: "<q",
    _FLOAT64: "<d",
}
_FLOAT_TYPES: Final = frozenset({_FLOAT32, _FLOAT64})


class GgufMetadataError(ValueError):
    """The file is not a readable GGUF file (bad magic, unsupported version, truncated, …)."""


class _Reader:
    def __init__(self, stream: BinaryIO, size: int, path: str) -> None:
        self._stream = stream
        self._size = size
        self._path = path

    def _fail(self, reason: str) -> GgufMetadataError:
        return GgufMetadataError(f"{self._path}: {reason}")

    def read(self, count: int) -> bytes:
        data = self._stream.read(count)
        if len(data) != count:
            raise self._fail("unexpected end of file in the GGUF header")
        return data

    def skip(self, count: int) -> None:
        # A garbage length must not turn into a huge seek that "succeeds" past the end.
        if self._stream.tell() + count > self._size:
            raise self._fail("unexpected end of file in the GGUF header")
        self._stream.seek(count, os.SEEK_CUR)

    def scalar(self, value_type: int) -> int | float | bool:
        fmt = _SCALAR_FORMATS[value_type]
        value: int | float | bool = struct.unpack(fmt, self.read(struct.calcsize(fmt)))[0]
        return value

    def u32(self) -> int:
        return int(self.scalar(_UINT32))

    def u64(self) -> int:
        return int(self.scalar(_UINT64))

    def string_length(self) -> int:
        length = self.u64()
        if self._stream.tell() + length > self._size:
            raise self._fail(f"string length {length} runs past the end of the file")
        return length

    def string(self) -> str:
        return self.read(self.string_length()).decode("utf-8", errors="replace")

    def value_type(self) -> int:
        value_type = self.u32()
        if value_type not in _SCALAR_FORMATS and value_type not in (_STRING, _ARRAY):
            raise self._fail(f"unknown GGUF value type {value_type}")
        return value_type

    def skip_array(self) -> None:
        element_type = self.value_type()
        count = self.u64()
        if element_type == _STRING:
            for _ in range(count):
                self.skip(self.string_length())
        elif element_type == _ARRAY:
            for _ in range(count):
                self.skip_array()
        else:
            self.skip(count * struct.calcsize(_SCALAR_FORMATS[element_type]))


def _scalar_to_str(value_type: int, value: int | float | bool) -> str:
    if value_type == _BOOL:
        return "true" if value else "false"
    if value_type in _FLOAT_TYPES:
        return f"{value:f}"
    return str(value)


def read_gguf_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """Return the file's non-array metadata as strings, sorted by key.

    Raises :class:`GgufMetadataError` for anything that is not a GGUF v2/v3 file, and ``OSError``
    if the file cannot be opened.
    """
    metadata, _ = _read_header(path, tensor_types=False)
    return metadata


def read_gguf_tensor_types(path: str | os.PathLike[str]) -> frozenset[int]:
    """The ggml type ids of the file's tensors (what decides which CPU kernels run).

    Raises like :func:`read_gguf_metadata`.
    """
    _, types = _read_header(path, tensor_types=True)
    return types


def _read_header(
    path: str | os.PathLike[str], *, tensor_types: bool
) -> tuple[dict[str, str], frozenset[int]]:
    display = os.fspath(path)
    with open(path, "rb") as stream:
        reader = _Reader(stream, os.fstat(stream.fileno()).st_size, display)
        try:
            magic = reader.read(4)
        except GgufMetadataError:
            magic = b""
        if magic != GGUF_MAGIC:
            raise GgufMetadataError(f"{display}: not a GGUF file (bad magic {magic!r})")
        version = reader.u32()
        if version not in _SUPPORTED_VERSIONS:
            raise GgufMetadataError(f"{display}: unsupported GGUF version {version}")
        tensor_count = reader.u64()
        kv_count = reader.u64()
        metadata: dict[str, str] = {}
        for _ in range(kv_count):
            key = reader.string()
            value_type = reader.value_type()
            if value_type == _ARRAY:
                reader.skip_array()
            elif value_type == _STRING:
                metadata[key] = reader.string()
            else:
                metadata[key] = _scalar_to_str(value_type, reader.scalar(value_type))
        types: set[int] = set()
        if tensor_types:
            for _ in range(tensor_count):
                reader.skip(reader.string_length())  # the tensor's name
                reader.skip(8 * reader.u32())  # its dimensions
                types.add(reader.u32())
                reader.u64()  # its data offset
    return dict(sorted(metadata.items())), frozenset(types)
