"""``/v1/models``: the loaded models, by file name (no sockets)."""

from __future__ import annotations

from types import SimpleNamespace

from paddler_tui.server.balancer.web.openai_service import loaded_models, model_list


def agent(model_path: str | None) -> SimpleNamespace:
    return SimpleNamespace(status=SimpleNamespace(model_path=model_path))


def test_each_loaded_model_once_by_file_name() -> None:
    agents = [
        agent("/models/b.gguf"),
        agent(None),  # loading, or no model desired
        agent("/cache/snapshots/abc/a.gguf"),
        agent("/elsewhere/b.gguf"),
    ]
    assert loaded_models(agents) == ["a.gguf", "b.gguf"]


def test_list_shape() -> None:
    assert model_list(["a.gguf"], 1700000000) == {
        "object": "list",
        "data": [
            {"id": "a.gguf", "object": "model", "created": 1700000000, "owned_by": "paddler-tui"}
        ],
    }
    assert model_list([], 0) == {"object": "list", "data": []}
