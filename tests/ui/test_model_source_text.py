from __future__ import annotations

import pytest

from paddler_tui.models import default_model_path
from paddler_tui.protocol.model_source import HuggingFace, LocalToAgent, NoModel, Url
from paddler_tui.ui import model_source_text
from paddler_tui.ui.model_source_text import (
    ModelSourceError,
    describe_model_source,
    format_model_source,
    parse_model_source,
)

HF = HuggingFace(filename="qwen3-0.6b-q8_0.gguf", repo_id="Qwen/Qwen3-0.6B-GGUF", revision="main")


@pytest.mark.parametrize(
    ("text", "model"),
    [
        ("", NoModel()),
        ("   ", NoModel()),
        ("https://huggingface.co/Qwen/Qwen3-0.6B-GGUF/blob/main/qwen3-0.6b-q8_0.gguf", HF),
        ("https://huggingface.co/Qwen/Qwen3-0.6B-GGUF/resolve/main/qwen3-0.6b-q8_0.gguf", HF),
        (
            "https://huggingface.co/o/r/resolve/refs%2Fpr%2F1/sub/dir/m.gguf?download=true",
            HuggingFace(filename="sub/dir/m.gguf", repo_id="o/r", revision="refs/pr/1"),
        ),
        ("agent:///models/m%20x.gguf", LocalToAgent(value="/models/m x.gguf")),
        ("/models/m.gguf", LocalToAgent(value="/models/m.gguf")),
        ("https://example.com/m.gguf", Url(url="https://example.com/m.gguf")),
        ("http://10.0.0.1:8080/m.gguf", Url(url="http://10.0.0.1:8080/m.gguf")),
        ("default", LocalToAgent(value=str(default_model_path()))),
    ],
)
def test_parse(text: str, model: object) -> None:
    assert parse_model_source(text) == model


@pytest.mark.parametrize(
    "text",
    [
        "models/m.gguf",
        "agent://models/m.gguf",
        "ftp://example.com/m.gguf",
        "https://huggingface.co/Qwen/Qwen3-0.6B-GGUF",
        "https://huggingface.co/Qwen/Qwen3-0.6B-GGUF/tree/main/m.gguf",
        "https://",
    ],
)
def test_unparseable_text_is_explained(text: str) -> None:
    with pytest.raises(ModelSourceError):
        parse_model_source(text)


@pytest.mark.parametrize(
    "model",
    [NoModel(), HF, LocalToAgent(value="/m.gguf"), Url(url="https://e.com/m.gguf")],
)
def test_format_round_trips(model: HuggingFace | LocalToAgent | Url | NoModel) -> None:
    assert parse_model_source(format_model_source(model)) == model


def test_the_default_model_is_shown_as_default() -> None:
    assert format_model_source(LocalToAgent(value=str(default_model_path()))) == "default"


def test_default_needs_the_model_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(model_source_text, "_default_path", lambda: None)
    with pytest.raises(ModelSourceError, match="not installed"):
        parse_model_source("default")


def test_descriptions() -> None:
    assert describe_model_source(HF).startswith("Hugging Face: qwen3-0.6b-q8_0.gguf from Qwen/")
    assert describe_model_source(NoModel()) == "no model"
    assert describe_model_source(LocalToAgent(value="/m.gguf")) == "file on each agent: /m.gguf"
    assert describe_model_source(Url(url="https://e/m")) == "download: https://e/m"
